launch/scaling-study check --study docs/data/cluster-check/1gbit-0.5ms-b16 --busbw 0.106688 --latency-us 688.4 --allreduce-latency-us 688.4 --rendezvous-us 38.7 --rendezvous-bytes 65536
