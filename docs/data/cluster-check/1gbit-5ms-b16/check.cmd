launch/scaling-study check --study docs/data/cluster-check/1gbit-5ms-b16 --busbw 0.0995958 --latency-us 5183.1 --allreduce-latency-us 12734.4 --rendezvous-us 14680.2 --rendezvous-bytes 65536
