#!/usr/bin/env bash
# The scaling model's byte counts (launch/scaling-study bytes) against the bytes alexnet's
# communicators count (alexnet --benchmark), exactly: payloads to the byte, sent bytes to the
# printed precision -- data-parallel and hybrid, uneven neuron pieces (M=3: 500 = 167+167+166)
# and uneven slices (a global batch of 10 on 4 ranks). LeNet, 2 timed steps each.
#   test_grid_bytes.sh PATH/TO/alexnet MPIEXEC [MPIEXEC FLAGS...]
set -u
bin=$1
shift
mpi=("$@")
study=$(cd "$(dirname "$0")/../.." && pwd)/launch/scaling-study
pass=0
fails=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ok() { echo "ok: $1"; pass=$((pass + 1)); }
bad() { echo "FAIL: $1"; fails=$((fails + 1)); }

bench() {  # bench NAME RANKS M BATCH
  "${mpi[@]}" -n "$2" "$bin" --benchmark --model lenet --resize 28 --batch-size "$4" --steps 2 \
    --warmup-steps 1 --model-parallel "$3" --workers 1 --metrics-file "$tmp/$1.jsonl" >"$tmp/$1.log" 2>&1 \
    || bad "$1: exit $?: $(tail -3 "$tmp/$1.log")"
}
bench profile 1 1 8
for c in "2 1 16" "2 2 16" "3 3 12" "4 2 10" "4 4 10"; do
  set -- $c
  bench "n$1-m$2" "$1" "$2" "$3"
  out=$("$study" bytes --profile "$tmp/profile.jsonl" --metrics "$tmp/n$1-m$2.jsonl" 2>&1)
  [ $? -eq 0 ] && ok "N=$1 M=$2 batch $3: model = counted" || bad "N=$1 M=$2: $out"
done
grep -qE "bytes sent per step and rank \(counted, ring convention; --model-parallel 2\): [0-9.]+ MB = all-reduce [0-9.]+ MB \+ all-gather [0-9.]+ MB \+ reduce-scatter [0-9.]+ MB \+ broadcast 0.000 MB" "$tmp/n2-m2.log" \
  && ok "the benchmark prints bytes by operation" || bad "no bytes line: $(cat "$tmp/n2-m2.log")"
grep -qE "step time: [0-9.]+ ms = compute [0-9.]+ \+ exposed communication [0-9.]+ \+ activation exchange [0-9.]+ \+ stop vote [0-9.]+ \+ data wait [0-9.]+" "$tmp/n2-m2.log" \
  && ! grep -q "activation exchange" "$tmp/n2-m1.log" \
  && ok "the activation exchange is its own part of the step (M = 2 only)" || bad "step line: $(grep "step time" "$tmp"/n2-m*.log)"

# The check can fail: the same record claimed for another grid.
sed 's/"model_parallel":2/"model_parallel":1/' "$tmp/n4-m2.jsonl" >"$tmp/wrong.jsonl"
"$study" bytes --profile "$tmp/profile.jsonl" --metrics "$tmp/wrong.jsonl" >"$tmp/wrong.out" 2>&1
[ $? -eq 1 ] && grep -q "does NOT match" "$tmp/wrong.out" && ok "a wrong grid is told apart" \
  || bad "a wrong grid passed: $(cat "$tmp/wrong.out")"

echo "$pass passed, $fails failed"
[ "$fails" -eq 0 ]
