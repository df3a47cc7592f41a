launch/scaling-study check --study docs/data/cluster-check/1gbit-5ms-b384 --busbw 0.119551 --latency-us 5249.6 --allreduce-latency-us 12544.3 --rendezvous-us 17558.4 --rendezvous-bytes 65536
