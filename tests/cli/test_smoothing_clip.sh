#!/usr/bin/env bash
# --label-smoothing and --clip-grad-norm through alexnet on 2 ranks: the epoch record counts the
# clipped steps, a resumed run takes bitwise the steps of a straight one, and resuming with
# another value of either option is refused.
#   test_smoothing_clip.sh PATH/TO/alexnet MPIEXEC [MPIEXEC FLAGS...]
set -u
bin=$1
shift
mpi=("$@")
pass=0
fails=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ok() { echo "ok: $1"; pass=$((pass + 1)); }
bad() { echo "FAIL: $1"; fails=$((fails + 1)); }
same_state() { h5diff "$1" "$2" /params /params >/dev/null && h5diff "$1" "$2" /momentum /momentum >/dev/null; }

run=(--model lenet --resize 0 --dataset synthetic --synthetic-shape 1x28x28 --synthetic-classes 10
     --synthetic-train-size 640 --synthetic-test-size 64 --batch-size 64 --lr 0.1 --momentum 0.9
     --workers 1 --label-smoothing 0.1 --clip-grad-norm 0.3)

# 1. Two epochs straight, with the metrics.
"${mpi[@]}" -n 2 "$bin" "${run[@]}" --epochs 2 --checkpoint-dir "$tmp/straight" \
  --metrics-file "$tmp/metrics.jsonl" >"$tmp/straight.log" 2>&1 \
  && ok "straight run" || bad "straight run: $(cat "$tmp/straight.log")"
final=$(ls "$tmp"/straight/ckpt-*.h5 | tail -1)
clipped=$(python3 -c "
import json, sys
print(' '.join(str(r['clipped_steps']) for r in map(json.loads, open(sys.argv[1]))
               if r.get('event') == 'epoch'))" "$tmp/metrics.jsonl")
# Every count within [0, 10] steps, and some clipped (the norm starts above 0.3, and falls below it).
python3 -c "import sys; c = [int(v) for v in sys.argv[1:]]; sys.exit(not (len(c) == 2 and all(0 <= v <= 10 for v in c) and sum(c) > 0))" $clipped \
  && ok "epoch records count the clipped steps: $clipped of 10 each" || bad "clipped_steps: '$clipped'"

# 2. One epoch, then resume to two: bitwise the same.
"${mpi[@]}" -n 2 "$bin" "${run[@]}" --epochs 1 --checkpoint-dir "$tmp/split" >/dev/null 2>&1
out=$("${mpi[@]}" -n 2 "$bin" "${run[@]}" --epochs 2 --checkpoint-dir "$tmp/split" --resume auto 2>&1)
same_state "$final" "$tmp/split/$(basename "$final")" && ok "resume with smoothing and clipping is bitwise exact" \
  || bad "resumed run differs from the straight run: $out"

# 3. Another value of either option takes other steps: refused, one line, exit 2.
for change in "--clip-grad-norm 0.25:clip-grad-norm = 0.25: the run was started with clip-grad-norm = 0.3" \
              "--label-smoothing 0:label-smoothing = 0: the run was started with label-smoothing = 0.1"; do
  opt=${change%%:*}
  want=${change#*:}
  args=()
  for a in "${run[@]}"; do args+=("$a"); done
  key=${opt%% *}
  val=${opt#* }
  for i in "${!args[@]}"; do [ "${args[$i]}" = "$key" ] && args[$((i + 1))]=$val; done
  out=$("${mpi[@]}" -n 2 "$bin" "${args[@]}" --epochs 3 --checkpoint-dir "$tmp/split" --resume auto 2>&1)
  rc=$?
  [ "$rc" -eq 2 ] && [ "$(grep -c "cannot resume with $want" <<<"$out")" -eq 1 ] \
    && ok "resuming with $opt is refused" || bad "resume with $opt: exit $rc: $out"
done

echo "$pass passed, $fails failed"
[ "$fails" -eq 0 ]
