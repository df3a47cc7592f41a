launch/scaling-study check --study docs/data/cluster-check/100mbit-0.5ms-b64 --busbw 0.0119551 --latency-us 623.0 --allreduce-latency-us 500.2 --rendezvous-us 37505.7 --rendezvous-bytes 65536
