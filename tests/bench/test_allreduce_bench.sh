#!/usr/bin/env bash
# distnet_allreduce_bench on 1-3 MPI ranks: every operation (all-reduce, all-gather,
# reduce-scatter) verifies its result at every size, also sizes that do not split into equal
# pieces (cut down to them); busbw follows nccl-tests' factors; bad options give one line and
# exit 2.
#   test_allreduce_bench.sh PATH/TO/distnet_allreduce_bench MPIEXEC [MPIEXEC FLAGS...]
set -u
bin=$1
shift
mpi=("$@")
pass=0
fails=0
ok() { echo "ok: $1"; pass=$((pass + 1)); }
bad() { echo "FAIL: $1"; fails=$((fails + 1)); }
export OMP_NUM_THREADS=1

for n in 1 2 3; do
  for op in allreduce allgather reduce_scatter; do
    out=$("${mpi[@]}" -n "$n" "$bin" --op "$op" --min-bytes 1000 --max-bytes 70000 --iters 2 \
      --warmup 1 --json 2>&1)
    rc=$?
    json=$(grep "^{\"event\":\"$op\",\"ranks\":$n," <<<"$out")
    rows=$(grep -c . <<<"$json")
    [ "$rc" -eq 0 ] && grep -q "^# all sums verified" <<<"$out" && [ "$rows" -eq 7 ] \
      && ok "$op on $n rank(s): 7 sizes, all verified" || bad "$op on $n: exit $rc, $rows rows: $out"
    # busbw / algbw: 2(n-1)/n for all-reduce, (n-1)/n for the others; nothing wrong anywhere.
    python3 -c '
import json, sys
op, n = sys.argv[1], int(sys.argv[2])
f = (2.0 if op == "allreduce" else 1.0) * (n - 1) / n
for line in sys.stdin:
    r = json.loads(line)
    assert r["wrong"] == 0 and r["time_us"] > 0, r
    assert abs(r["busbw_gbs"] - f * r["algbw_gbs"]) <= 1e-3 + 1e-3 * r["algbw_gbs"], r
    if op != "allreduce":
        assert r["bytes"] % (4 * n) == 0, r  # equal pieces of whole floats
' "$op" "$n" <<<"$json" && ok "$op on $n: busbw factor, equal pieces" || bad "$op on $n: $json"
  done
done

for args in "--op alltoall" "--op allgather --wire bf16"; do
  out=$("${mpi[@]}" -n 2 "$bin" $args 2>&1)
  rc=$?
  lines=$(grep -c "distnet_allreduce_bench: error:" <<<"$out")
  [ "$rc" -eq 2 ] && [ "$lines" -eq 1 ] && ok "'$args' refused: $(grep error <<<"$out")" \
    || bad "'$args': exit $rc: $out"
done

echo "$pass passed, $fails failed"
[ "$fails" -eq 0 ]
