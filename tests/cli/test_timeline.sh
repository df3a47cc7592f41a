#!/usr/bin/env bash
# --timeline, the per-epoch rank report and the straggler line, on 2 and 3 CPU ranks.
#   test_timeline.sh PATH/TO/alexnet MPIEXEC [MPIEXEC FLAGS...]
set -u
bin=$1
shift
mpi=("$@")
here=$(cd "$(dirname "$0")" && pwd)
pass=0
fails=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ok() { echo "ok: $1"; pass=$((pass + 1)); }
bad() { echo "FAIL: $1"; fails=$((fails + 1)); }
run=(--model lenet --train-limit 3000 --test-limit 300 --batch-size 300 --epochs 1 --workers 1
  --progress off --bucket-mb 0.5)

# 1. Three ranks write one timeline, with checkpoints so that the writer's row is there too.
out=$("${mpi[@]}" -n 3 "$bin" "${run[@]}" --checkpoint-dir "$tmp/ckpt" --checkpoint-every 4steps \
  --timeline "$tmp/t.json" 2>&1)
rc=$?
[ "$rc" -eq 0 ] && grep -q "^timeline: $tmp/t.json (" <<<"$out" && ok "3 ranks: timeline written" \
  || bad "3 ranks, --timeline: exit $rc: $out"
if python3 "$here/check_timeline.py" "$tmp/t.json" 3 >"$tmp/check.log"; then
  ok "the timeline passes the strict checks ($(grep -c '^ok' "$tmp/check.log") checks)"
else
  bad "timeline checks: $(grep FAIL "$tmp/check.log")"
fi

# 1b. The hybrid grid (--model-parallel 2): its activation collectives on their own row, five in
# every step, besides everything the strict checks ask of any run.
out=$("${mpi[@]}" -n 2 "$bin" "${run[@]}" --model-parallel 2 --timeline "$tmp/h.json" 2>&1)
rc=$?
if [ "$rc" -eq 0 ] && python3 "$here/check_timeline.py" "$tmp/h.json" 2 --exchange >"$tmp/hcheck.log"; then
  ok "M=2: the exchange row and the strict checks ($(grep -c '^ok' "$tmp/hcheck.log") checks)"
else
  bad "M=2 timeline: exit $rc: $(grep FAIL "$tmp/hcheck.log" 2>/dev/null) $out"
fi
# The check can fail: a data-parallel run has no exchange row.
python3 "$here/check_timeline.py" "$tmp/t.json" 3 --exchange >"$tmp/nocheck.log"
[ $? -eq 1 ] && grep -q "FAIL: rank 0: activation exchange row" "$tmp/nocheck.log" \
  && ok "--exchange fails on a data-parallel timeline" || bad "--exchange on M=1: $(grep -c FAIL "$tmp/nocheck.log") failures"

# 2. A window of steps: only steps 2 and 3 are recorded.
"${mpi[@]}" -n 2 "$bin" "${run[@]}" --timeline "$tmp/w.json" --timeline-steps 2:4 >"$tmp/w.log" 2>&1
steps=$(python3 -c "
import json; ev = json.load(open('$tmp/w.json'))['traceEvents']
print(' '.join(sorted({e['name'] for e in ev if e['ph'] == 'X' and e['name'].startswith('step ')})))")
[ "$steps" = "step 2 step 3" ] && ok "--timeline-steps 2:4 records steps 2 and 3 only" \
  || bad "--timeline-steps 2:4 recorded '$steps': $(cat "$tmp/w.log")"

# 3. A rank slowed on purpose (300 ms a step) is named, with its host; the metrics say so too.
out=$("${mpi[@]}" -n 3 "$bin" "${run[@]}" --debug-delay-rank 1:300 --metrics-file "$tmp/m.jsonl" 2>&1)
grep -qE "^straggler: rank 1 \(host [^)]+\) computed [0-9.]+ s, [0-9]+% above the median" <<<"$out" \
  && ok "the slowed rank is named: $(grep '^straggler' <<<"$out")" || bad "no straggler line naming rank 1: $out"
grep -q '"event":"ranks",.*"slowest_rank":1,' "$tmp/m.jsonl" && ok "metrics: the ranks event names rank 1" \
  || bad "metrics: $(grep ranks "$tmp/m.jsonl")"

# 4. One rank per core, nothing slowed, a generous threshold: the per-rank line, no straggler.
out=$("${mpi[@]}" -n 2 "$bin" "${run[@]}" --straggler-threshold 1.0 2>&1)
grep -qE "^ranks in epoch 1: compute [0-9.]+-[0-9.]+ s \(median [0-9.]+ s\), waiting in collectives" <<<"$out" \
  && ! grep -q "^straggler" <<<"$out" && ok "2 ranks: the rank line, no straggler" || bad "2 ranks: $out"

# 5. The benchmark measures what recording costs.
out=$("${mpi[@]}" -n 2 "$bin" --model lenet --benchmark --batch-size 256 --steps 20 --warmup-steps 3 \
  --progress off --timeline "$tmp/b.json" 2>&1)
grep -qE "^  timeline overhead: [-+][0-9.]+ % \(step [0-9.]+ ms recorded, [0-9.]+ ms not" <<<"$out" \
  && ok "benchmark: $(grep 'timeline overhead' <<<"$out" | sed 's/^ *//')" || bad "benchmark overhead: $out"
cost=$(grep -oE "^  timeline cost: .* ([0-9.]+) % of a step" <<<"$out" | grep -oE "[0-9.]+ % of a step" | cut -d' ' -f1)
python3 -c "import sys; sys.exit(0 if 0 < float('${cost:-0}') <= 1.0 else 1)" \
  && ok "benchmark: $(grep 'timeline cost' <<<"$out" | sed 's/^ *//') (the goal: at most 1 %)" || bad "timeline cost: $out"

# 6. Bad values: one line, exit 2 (or 1 for an unwritable file), on every rank.
out=$("${mpi[@]}" -n 2 "$bin" "${run[@]}" --timeline-steps 5:3 2>&1); rc=$?
[ "$rc" -eq 2 ] && [ "$(grep -c "timeline-steps 5:3 is empty" <<<"$out")" -eq 1 ] && ok "--timeline-steps 5:3 refused" \
  || bad "--timeline-steps 5:3: exit $rc: $out"
out=$("${mpi[@]}" -n 2 "$bin" "${run[@]}" --timeline /proc/distnet/t.json 2>&1); rc=$?
[ "$rc" -eq 1 ] && [ "$(grep -c "cannot open the timeline file for writing" <<<"$out")" -eq 1 ] \
  && ok "unwritable --timeline refused at set-up" || bad "unwritable timeline: exit $rc: $out"

# 7. --nvtx: the ranges come from the CUDA module (NVTX 3, no-ops without a profiler attached).
if [ -f "$(dirname "$bin")/libdistnet_cuda.so" ]; then
  out=$("${mpi[@]}" -n 2 "$bin" "${run[@]}" --nvtx 2>&1); rc=$?
  [ "$rc" -eq 0 ] && grep -q "^epoch 1," <<<"$out" && ok "--nvtx: a 2-rank run with NVTX ranges" || bad "--nvtx: exit $rc: $out"
  out=$(DISTNET_CUDA_MODULE=/nonexistent "${mpi[@]}" -x DISTNET_CUDA_MODULE -n 2 "$bin" "${run[@]}" --nvtx 2>&1); rc=$?
  [ "$rc" -eq 2 ] && [ "$(grep -c "alexnet: error: --nvtx: the GPU backend cannot be loaded" <<<"$out")" -eq 1 ] \
    && ok "--nvtx without the module: exit 2, one line" || bad "--nvtx without the module: exit $rc: $out"
else
  echo "note: no CUDA module in this build: --nvtx not tried"
fi

echo "$pass passed, $fails failed"
[ "$fails" -eq 0 ]
