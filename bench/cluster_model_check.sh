#!/usr/bin/env bash
# The scaling model against steps measured across two nodes on shaped links
# (docs/scaling-model.md "Check across nodes on shaped links"). For each link -- a rate given to
# both nodes' NICs (tc tbf) and a one-way delay on node2's link (distnet-wire) -- it:
#   1. makes the cluster (launch/cluster, 2 nodes, 1 slot each),
#   2. measures the link with distnet_allreduce_bench: the bandwidth large messages get (the
#      slope between 2 and 8 MiB, at most the rate's payload), and fixed costs, each a time less
#      what that bandwidth takes to carry the bytes: a small collective's (an 8-byte all-reduce:
#      one exchange), a bucket's all-reduce (64 KiB: the ring's phases, each a message under Open
#      MPI's eager limit), and what a message above that limit adds (2 MiB: Open MPI sends it
#      after a handshake, a round trip more); OUT/LINK.link and each study's link.txt hold them,
#   3. runs a weak-scaling study of LeNet on 1 and 2 ranks, data-parallel and --model-parallel 2
#      (launch/scaling-study run, inside node1, ranks placed by the hostfile: 1 per node), for
#      each per-rank batch in $BATCHES (default 16; data parallelism sends the same gradient
#      bytes at any batch, the hybrid grid activations in proportion to it, so a sweep shows
#      where the faster mode changes),
#   4. compares it with the model given that bandwidth, those costs and the eager limit
#      (launch/scaling-study check, across-node mode) and prints the table (check.txt);
#      check-rate.txt is the same given the rate's payload (the rate less Ethernet, IP and TCP
#      headers: 1448 payload bytes per 1514-byte frame) and the costs taken against it.
# Open MPI runs with btl_tcp_links 2 (over one TCP connection per peer its all-reduce on 2 ranks
# reaches about half the line rate) and pml_ob1_send_pipeline_depth 32 (with the default 3, at
# most 3 x 128 KiB of a message are in flight, which caps a 10 ms round trip at about 40 MB/s):
# docs/multi-node.md "TCP". Needs root and a built tree. About 20 s per link and batch on 2 cores
# (a minute at batch 384).
#   [BATCHES="16 64"] bench/cluster_model_check.sh [OUT] [LINKS...]   LINKS: RATE:DELAY, e.g. 1gbit:0.5ms
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-cluster-model-check}
shift || true
links=("$@")
[ ${#links[@]} -gt 0 ] || links=(100mbit:5ms 1gbit:5ms 100mbit:0.5ms 1gbit:0.5ms)
batches=${BATCHES:-16}
mkdir -p "$out"
out=$(cd "$out" && pwd)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
cluster=$src/launch/cluster
study=$src/launch/scaling-study
dir=$(mktemp -d /tmp/distnet-model-check-XXXXXX)
rmdir "$dir"
trap '[ -e "$dir/cluster.json" ] && "$cluster" down --dir "$dir" >/dev/null 2>&1; true' EXIT

for link in "${links[@]}"; do
  rate=${link%%:*}
  delay=${link#*:}
  name=$rate-$delay
  bits=$(python3 -c "
r='$rate'; u={'kbit':1e3,'mbit':1e6,'gbit':1e9}
print(next(float(r[:-len(k)])*v for k,v in u.items() if r.endswith(k)))")
  busbw=$(python3 -c "print('%.6g' % ($bits / 8 * 1448 / 1514 / 1e9))")
  "$cluster" up --dir "$dir" --nodes 2 --slots 1 --rate "$rate" >/dev/null
  "$cluster" shape --dir "$dir" node2 --delay "$delay" >/dev/null
  mpi="mpirun -q --hostfile $dir/hostfile --bind-to none --mca btl_tcp_links 2 --mca pml_ob1_send_pipeline_depth 32"
  bench() {  # bytes -> microseconds per all-reduce on the 2 nodes
    "$cluster" exec --dir "$dir" node1 -- $mpi -n 2 "$src/build/distnet_allreduce_bench" --min-bytes "$1" \
      --max-bytes "$1" --warmup 5 --iters "$2" | awk '!/^#/ {print $3}'
  }
  t8=$(bench 8 50)
  t64k=$(bench 65536 30)
  t2m=$(bench 2097152 10)
  t8m=$(bench 8388608 5)
  eager=$(ompi_info --param btl tcp --level 9 --parsable 2>/dev/null | sed -n 's/^mca:btl:tcp:param:btl_tcp_eager_limit:value://p')
  # The bandwidth large messages get: the slope between 2 and 8 MiB (both above the eager limit,
  # so the handshakes cancel), at most the rate's payload.
  slope=$(python3 -c "print('%.6g' % min($busbw, (8388608 - 2097152) / max($t8m - $t2m, 1e-9) / 1e3))")
  costs() {  # busbw -> the check's arguments: each fixed cost is a time less what busbw takes for its bytes
    python3 - "$1" "$t8" "$t64k" "$t2m" "${eager:-65536}" <<'PY'
import sys
bw, t8, t64k, t2m = (float(x) for x in sys.argv[1:5])
fixed = lambda t, n: max(0.0, t - n / (bw * 1e9) * 1e6)
lat = fixed(t8, 8)
# A bucket's all-reduce costs at least one exchange (64 KiB can beat the large-message slope: it
# fits in TCP's window and the token bucket).
ar = max(lat, fixed(t64k, 65536))
rndv = max(0.0, fixed(t2m, 2097152) - ar)
print("--busbw %s --latency-us %.1f --allreduce-latency-us %.1f --rendezvous-us %.1f --rendezvous-bytes %s"
      % (sys.argv[1], lat, ar, rndv, sys.argv[5]))
PY
  }
  args=($(costs "$slope"))
  rate_args=($(costs "$busbw"))
  echo "# link $name: rate's payload $busbw GB/s; all-reduce of 8 B $t8 us, 64 KiB $t64k us," \
    "2 MiB $t2m us, 8 MiB $t8m us; eager limit ${eager:-65536} B; the check's link: ${args[*]};" \
    "given the rate: ${rate_args[*]}" | tee "$out/$name.link"
  for b in $batches; do
    tag=$name-b$b
    rm -rf "$dir/shared/study"
    steps=$((b >= 256 ? 10 : 30))
    "$cluster" exec --dir "$dir" node1 -- "$study" run --ranks 1,2 --model-parallel 1,2 --mode weak --repeat 3 \
      --steps "$steps" --warmup-steps 3 --per-rank-batch "$b" --threads-per-rank 1 \
      --launcher "$mpi -n {ranks} -x OMP_NUM_THREADS" --out "$dir/shared/study" \
      -- --model lenet --dataset synthetic --synthetic-shape 1x28x28 --workers 1 >"$out/$tag.log" 2>&1
    rm -rf "${out:?}/$tag"
    mkdir -p "$out/$tag"
    cp "$dir/shared/study/scaling.csv" "$dir/shared/study/profile.json" "$dir/shared/study/profile-m2.json" "$out/$tag/"
    cp "$out/$name.link" "$out/$tag/link.txt"
    echo "$study check --study $out/$tag ${args[*]}" | tee "$out/$tag/check.cmd"
    "$study" check --study "$out/$tag" "${args[@]}" | tee "$out/$tag/check.txt"
    # The same with the rate's payload as the bandwidth (the fixed costs taken against it).
    echo "$study check --study $out/$tag ${rate_args[*]}" >"$out/$tag/check-rate.cmd"
    "$study" check --study "$out/$tag" "${rate_args[@]}" >"$out/$tag/check-rate.txt"
  done
  "$cluster" down --dir "$dir" >/dev/null
done
