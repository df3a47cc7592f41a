launch/scaling-study check --study docs/data/cluster-check/100mbit-5ms-b16 --busbw 0.0119551 --latency-us 5272.4 --allreduce-latency-us 8041.4 --rendezvous-us 25648.2 --rendezvous-bytes 65536
