launch/scaling-study check --study docs/data/cluster-check/1gbit-0.5ms-b16 --busbw 0.119551 --latency-us 745.5 --allreduce-latency-us 796.7 --rendezvous-us 4820.1 --rendezvous-bytes 65536
