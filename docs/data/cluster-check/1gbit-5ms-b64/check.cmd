launch/scaling-study check --study docs/data/cluster-check/1gbit-5ms-b64 --busbw 0.11423 --latency-us 5249.6 --allreduce-latency-us 12518.7 --rendezvous-us 16766.8 --rendezvous-bytes 65536
