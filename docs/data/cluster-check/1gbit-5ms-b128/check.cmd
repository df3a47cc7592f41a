launch/scaling-study check --study docs/data/cluster-check/1gbit-5ms-b128 --busbw 0.119551 --latency-us 5301.8 --allreduce-latency-us 13051.2 --rendezvous-us 20691.4 --rendezvous-bytes 65536
