launch/scaling-study check --study docs/data/cluster-check/100mbit-5ms-b16 --busbw 0.0119551 --latency-us 5212.6 --allreduce-latency-us 8339.4 --rendezvous-us 25358.3 --rendezvous-bytes 65536
