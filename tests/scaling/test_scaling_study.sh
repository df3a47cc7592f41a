#!/usr/bin/env bash
# launch/scaling-study on 1 and 2 CPU ranks with tiny synthetic settings: the CSV has the expected
# columns and rows, the plots exist and are images, time-to-accuracy and the projection run, and
# bad arguments give clear errors.
#   test_scaling_study.sh PATH/TO/alexnet
set -u
bin=$1
study=$(cd "$(dirname "$0")/../.." && pwd)/launch/scaling-study
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0
fails=0
ok() { echo "ok: $1"; pass=$((pass + 1)); }
bad() { echo "FAIL: $1"; fails=$((fails + 1)); }

"$study" run --alexnet "$bin" --ranks 1,2 --model-parallel 1,2 --repeat 2 --steps 3 --warmup-steps 1 \
  --per-rank-batch 16 --global-batch 32 --threads-per-rank 1 --timeline --out "$tmp/s" -- --model lenet \
  --resize 28 >"$tmp/run.log" 2>&1 && ok "study runs" || bad "study failed: $(tail -5 "$tmp/run.log")"
header=$(head -1 "$tmp/s/scaling.csv")
[ "$header" = "mode,ranks,nodes,per_rank_batch,global_batch,images_per_s_median,images_per_s_min,images_per_s_max,step_ms,compute_ms,comm_ms,data_ms,straggler_spread,speedup,efficiency,repeats,model_parallel,exchange_ms,vote_ms" ] \
  && ok "CSV columns" || bad "CSV header: $header"
rows=$(tail -n +2 "$tmp/s/scaling.csv" | cut -d, -f1,2,4,5,17 | tr '\n' ' ')
[ "$rows" = "weak,1,16.0,16,1 weak,2,16.0,32,1 weak,2,16.0,32,2 strong,1,32.0,32,1 strong,2,16.0,32,1 strong,2,16.0,32,2 " ] \
  && ok "CSV rows: weak and strong on 1 and 2 ranks, M = 1 and 2" || bad "CSV rows: $rows"
# The activation exchange is timed apart from compute: M = 2 rows have it, M = 1 rows do not.
awk -F, 'NR > 1 && (($17 == 1 && $18 != 0) || ($17 == 2 && $18 <= 0)) {exit 1}' "$tmp/s/scaling.csv" \
  && ok "activation exchange timed for M = 2 only" || bad "exchange_ms: $(cat "$tmp/s/scaling.csv")"
grep -qE '"event":"benchmark".*"model_parallel":2' "$tmp/s/runs/weak-n2-m2-r0.jsonl" \
  && grep -q '"exchange_ms":' "$tmp/s/runs/weak-n2-m2-r0.jsonl" && ok "M = 2 runs are hybrid benchmarks" \
  || bad "runs: $(ls "$tmp/s/runs")"
awk -F, 'NR > 1 && ($6 <= 0 || $7 > $6 || $8 < $6 || $16 != 2 || $13 < 0) {exit 1}' "$tmp/s/scaling.csv" \
  && ok "medians lie within min..max over 2 repeats" || bad "figures: $(cat "$tmp/s/scaling.csv")"
awk -F, 'NR > 1 && $2 == 1 && ($14 != 1 || $15 != 1 || $13 != 0) {exit 1}' "$tmp/s/scaling.csv" && ok "1 rank: speed-up and efficiency 1, no straggler spread" \
  || bad "baseline row"
[ "$(head -c 8 "$tmp/s/scaling.png" | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a" ] && [ "$(stat -c %s "$tmp/s/scaling.png")" -gt 2000 ] \
  && ok "PNG plot" || bad "no PNG plot"
grep -q "<svg" "$tmp/s/scaling.svg" && grep -q "efficiency" "$tmp/s/scaling.svg" && ok "SVG plot" || bad "no SVG plot"
out=$("$study" project --profile "$tmp/s/profile.json" --ranks 1,8 --busbw 100 2>&1) \
  && grep -qE "^ +8 +[0-9.]+ " <<<"$out" && ok "projection table" || bad "project: $out"
out=$("$study" check --study "$tmp/s" --busbw 4 2>&1) && grep -q "largest step error .* for M = 1" <<<"$out" \
  && [ "$(grep -cE "^ +2 +1 (compute|exposed comm|data wait|step) " <<<"$out")" -eq 4 ] \
  && [ "$(grep -cE "^ +2 +2 (compute|exposed comm|act exchange|data wait|step) " <<<"$out")" -eq 5 ] \
  && grep -q "largest step error .* for M = 2" <<<"$out" \
  && ok "model check, part by part, M = 1 and 2" || bad "check: $out"
n=$(ls "$tmp"/s/runs/*.trace.json 2>/dev/null | wc -l)
# A benchmark's trace has no epochs (no steps spans, evaluation, loader): both ranks' rows with
# their layers and buckets, in strict JSON.
[ "$n" -eq 12 ] && python3 -c "
import json, sys
ev = json.load(open('$tmp/s/runs/weak-n2-r0.trace.json'), parse_constant=lambda c: sys.exit(1))['traceEvents']
for r in (0, 1):
    names = {e['name'] for e in ev if e['pid'] == r and e['ph'] == 'X'}
    assert any(n.startswith('backward ') for n in names) and any(n.startswith('all-reduce bucket') for n in names), names
" && ok "--timeline: a trace per run ($n), with both ranks' layers and buckets" || bad "--timeline: $n trace files"

"$study" tta --alexnet "$bin" --ranks 1,2 --target 0.3 --threads-per-rank 1 --out "$tmp/t" -- --model lenet \
  --resize 0 --dataset synthetic --synthetic-train-size 2000 --synthetic-test-size 200 --epochs 3 \
  --lr 0.1 --momentum 0.9 >"$tmp/tta.log" 2>&1 && ok "time-to-accuracy runs" || bad "tta: $(tail -5 "$tmp/tta.log")"
[ "$(head -1 "$tmp/t/time_to_accuracy.csv")" = "ranks,target,reached,epochs,wall_s,test_acc" ] \
  && [ "$(grep -c ",True," "$tmp/t/time_to_accuracy.csv")" -eq 2 ] && ok "time-to-accuracy CSV" \
  || bad "tta CSV: $(cat "$tmp/t/time_to_accuracy.csv")"

for args in "--ranks ," "--ranks 1,x" "--ranks 0,2"; do
  out=$("$study" run --alexnet "$bin" $args --out "$tmp/bad" 2>&1); rc=$?
  [ "$rc" -eq 2 ] && grep -q "scaling-study: error: --ranks must be a comma-separated list of positive integers" <<<"$out" \
    && ok "bad $args" || bad "bad $args: exit $rc: $out"
done
out=$("$study" run --alexnet "$bin" --model-parallel 2 --out "$tmp/bad" 2>&1); rc=$?
[ "$rc" -eq 2 ] && grep -q "scaling-study: error: --model-parallel must include 1" <<<"$out" \
  && ok "a study without its data-parallel baseline refused" || bad "no M=1: exit $rc: $out"
out=$("$study" run --alexnet "$bin" --out "$tmp/bad" -- --model-parallel 2 2>&1); rc=$?
[ "$rc" -eq 2 ] && grep -q "give --model-parallel to scaling-study itself" <<<"$out" \
  && ok "--model-parallel after -- refused" || bad "after --: exit $rc: $out"
out=$("$study" project --profile "$tmp/s/runs/weak-n2-r0.jsonl" --busbw 10 2>&1); rc=$?
[ "$rc" -eq 2 ] && grep -q "must come from a 1-rank benchmark" <<<"$out" && ok "profile of 2 ranks refused" || bad "profile: $out"

echo "$pass passed, $fails failed"
[ "$fails" -eq 0 ]
