launch/scaling-study check --study docs/data/cluster-check/100mbit-0.5ms-b16 --busbw 0.0119551 --latency-us 735.9 --allreduce-latency-us 1053.3 --rendezvous-us 26499.8 --rendezvous-bytes 65536
