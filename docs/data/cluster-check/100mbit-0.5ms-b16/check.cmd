launch/scaling-study check --study docs/data/cluster-check/100mbit-0.5ms-b16 --busbw 0.0113308 --latency-us 631.0 --allreduce-latency-us 631.0 --rendezvous-us 7580.8 --rendezvous-bytes 65536
