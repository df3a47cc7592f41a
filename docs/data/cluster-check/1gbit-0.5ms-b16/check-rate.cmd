launch/scaling-study check --study docs/data/cluster-check/1gbit-0.5ms-b16 --busbw 0.119551 --latency-us 688.4 --allreduce-latency-us 729.7 --rendezvous-us 2112.4 --rendezvous-bytes 65536
