launch/scaling-study check --study docs/data/cluster-check/100mbit-0.5ms-b16 --busbw 0.0119551 --latency-us 631.1 --allreduce-latency-us 631.1 --rendezvous-us 17245.9 --rendezvous-bytes 65536
