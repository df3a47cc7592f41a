launch/scaling-study check --study docs/data/cluster-check/100mbit-5ms-b16 --busbw 0.0117693 --latency-us 5272.4 --allreduce-latency-us 7954.9 --rendezvous-us 22965.4 --rendezvous-bytes 65536
