launch/scaling-study check --study docs/data/cluster-check/1gbit-5ms-b16 --busbw 0.119551 --latency-us 5242.5 --allreduce-latency-us 12835.3 --rendezvous-us 21686.2 --rendezvous-bytes 65536
