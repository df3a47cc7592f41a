launch/scaling-study check --study docs/data/cluster-check/100mbit-0.5ms-b128 --busbw 0.0119551 --latency-us 611.1 --allreduce-latency-us 611.1 --rendezvous-us 12934.2 --rendezvous-bytes 65536
