#!/usr/bin/env bash
# --sync-bn as users run it, under mpiexec: alexnet-bn on 3 ranks (the last batch of each epoch
# leaves one rank an empty slice) resumes exactly -- two epochs straight against one epoch, stop,
# resume, one more, compared bitwise (parameters, running statistics, momentum) -- and the start
# says what the option does; resuming with the other kind of batch-norm is refused in one line;
# a model without batch-norm is warned about once; the hybrid grid trains with it.
#   test_sync_bn_mpi.sh PATH/TO/alexnet MPIEXEC [MPIEXEC FLAGS...]
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
# Identical parameters (running statistics included: they are stored with them) and momentum.
same_state() { h5diff "$1" "$2" /params /params >/dev/null && h5diff "$1" "$2" /momentum /momentum >/dev/null; }

# 26 samples in batches of 8: 8, 8, 8, 2 -- on 3 ranks the last one is 1/1/0.
run=(--model alexnet-bn --sync-bn --dataset synthetic --synthetic-shape 1x67x67 --resize 0
  --synthetic-train-size 26 --synthetic-test-size 10 --batch-size 8 --lr 0.02 --momentum 0.9
  --workers 1 --progress off)

"${mpi[@]}" -n 3 "$bin" "${run[@]}" --epochs 2 --checkpoint-dir "$tmp/straight" >"$tmp/straight.log" 2>&1 \
  && ok "two epochs straight on 3 ranks" || bad "straight run: $(tail -5 "$tmp/straight.log")"
final=$(ls "$tmp"/straight/ckpt-*.h5 2>/dev/null | tail -1)
[ -n "$final" ] || bad "no checkpoint written"
grep -q "^batch-norm: statistics of the global batch, summed over all 3 ranks in every training pass (--sync-bn)$" \
  "$tmp/straight.log" && ok "the start says what --sync-bn does" || bad "no batch-norm line: $(head -8 "$tmp/straight.log")"
h5ls -r "$final" | grep -q "^/params/bn5/running_var " && ok "running statistics in the checkpoint" \
  || bad "no /params/bn5/running_var in $final"

"${mpi[@]}" -n 3 "$bin" "${run[@]}" --epochs 1 --checkpoint-dir "$tmp/split" >"$tmp/first.log" 2>&1 \
  || bad "first epoch: $(tail -5 "$tmp/first.log")"
out=$("${mpi[@]}" -n 3 "$bin" "${run[@]}" --epochs 2 --checkpoint-dir "$tmp/split" --resume auto 2>&1)
grep -q "resuming from .*ckpt-epoch0001-step00000004.h5" <<<"$out" && ok "resumes from epoch 1" \
  || bad "resume: $out"
[ -n "$final" ] && same_state "$final" "$tmp/split/$(basename "$final")" \
  && ok "stop and resume with --sync-bn is bitwise exact" || bad "resumed run differs from the straight run"
grep "^epoch 2," "$tmp/straight.log" | cut -d, -f1-4 >"$tmp/a"
grep "^epoch 2," <<<"$out" | cut -d, -f1-4 >"$tmp/b"
[ -s "$tmp/a" ] && cmp -s "$tmp/a" "$tmp/b" && ok "same epoch-2 metrics" \
  || bad "metrics differ: $(cat "$tmp/a") / $(cat "$tmp/b")"

# A stop request in the middle of step 6 (rank 0 alone): the layers are collectives, so the step
# is finished by every rank and the stop taken at its end; the resumed run is again exact.
"${mpi[@]}" -n 3 "$bin" "${run[@]}" --epochs 2 --checkpoint-dir "$tmp/mid" \
  --debug-fault stop-in-step:6 >"$tmp/mid1.log" 2>&1
rc=$?
[ "$rc" -eq 3 ] && grep -q "stopped on request at step 6; checkpoint ckpt-epoch0002-step00000006.h5 written" "$tmp/mid1.log" \
  && ok "a stop in the middle of step 6 is taken at its end" || bad "mid-step stop: exit $rc: $(cat "$tmp/mid1.log")"
"${mpi[@]}" -n 3 "$bin" "${run[@]}" --epochs 2 --checkpoint-dir "$tmp/mid" --resume auto >"$tmp/mid2.log" 2>&1 \
  || bad "mid-step resume: $(tail -5 "$tmp/mid2.log")"
[ -n "$final" ] && same_state "$final" "$tmp/mid/$(basename "$final")" \
  && ok "stop mid-step and resume with --sync-bn is bitwise exact" || bad "mid-step resumed run differs"

# The other kind of batch-norm would take other steps: refused, one line, before any work.
no_sync=()
for a in "${run[@]}"; do [ "$a" = --sync-bn ] || no_sync+=("$a"); done
out=$("${mpi[@]}" -n 2 "$bin" "${no_sync[@]}" --epochs 2 --checkpoint-dir "$tmp/split" --resume auto 2>&1); rc=$?
n=$(grep -c "alexnet: error: .*cannot resume with sync-bn = false: the run was started with sync-bn = true" <<<"$out")
[ "$rc" -eq 2 ] && [ "$n" -eq 1 ] && ok "resume without --sync-bn refused in one line" \
  || bad "resume without --sync-bn: exit $rc, $n lines: $out"

# A model without batch-norm: one warning, and the run goes on.
out=$("${mpi[@]}" -n 2 "$bin" --model lenet --sync-bn --dataset synthetic --synthetic-shape 1x28x28 \
  --resize 0 --synthetic-train-size 16 --synthetic-test-size 8 --batch-size 8 --epochs 1 \
  --workers 1 --progress off 2>&1); rc=$?
n=$(grep -c "^alexnet: warning: --sync-bn: model lenet has no batch-norm layer; the option changes nothing$" <<<"$out")
[ "$rc" -eq 0 ] && [ "$n" -eq 1 ] && ok "no batch-norm: warned once" || bad "no batch-norm: exit $rc, $n warnings: $out"

# The hybrid grid: the batch-norm layers lie before the split dense layers and sum over the world.
out=$("${mpi[@]}" -n 2 "$bin" "${run[@]}" --model-parallel 2 --epochs 1 2>&1); rc=$?
[ "$rc" -eq 0 ] && grep -q "^epoch 1, loss" <<<"$out" && ok "--sync-bn with --model-parallel 2" \
  || bad "--sync-bn with --model-parallel 2: exit $rc: $out"

echo "$pass passed, $fails failed"
[ "$fails" -eq 0 ]
