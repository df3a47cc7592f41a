launch/scaling-study check --study docs/data/cluster-check/1gbit-5ms-b16 --busbw 0.119551 --latency-us 5183.1 --allreduce-latency-us 12844.2 --rendezvous-us 18085.1 --rendezvous-bytes 65536
