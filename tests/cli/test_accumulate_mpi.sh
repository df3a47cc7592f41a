#!/usr/bin/env bash
# --accumulate K under mpiexec: bad values, checkpoints at optimizer steps, and a run started on
# 4 ranks with K = 1 resumed on 2 ranks with --accumulate 2 (the same global batch).
#   test_accumulate_mpi.sh PATH/TO/alexnet MPIEXEC [MPIEXEC FLAGS...]
set -u
bin=$1
shift
mpi=("$@")
here=$(cd "$(dirname "$0")/.." && pwd)
pass=0
fails=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ok() { echo "ok: $1"; pass=$((pass + 1)); }
bad() { echo "FAIL: $1"; fails=$((fails + 1)); }
same_state() { h5diff "$1" "$2" /params /params >/dev/null && h5diff "$1" "$2" /momentum /momentum >/dev/null; }
# Parameters within a relative tolerance (max |a - b| / max |a| per tensor); prints the worst.
close() { /usr/bin/python3 "$here/checkpoint/compare_checkpoints.py" "$1" "$2" "$3"; }

# LeNet on synthetic 28x28 images: 4 steps of 64 per epoch. (Rounding differences grow over
# the steps -- see test_checkpoint_mpi.sh 3c -- so the runs are short.)
data=(--model lenet --dataset synthetic --synthetic-shape 1x28x28 --synthetic-train-size 256
  --synthetic-test-size 64 --lr 0.02 --momentum 0.9 --workers 1 --progress off)
run=("${data[@]}" --batch-size 64)

# 1. Bad values: one line, exit 2, on every rank.
out=$("$bin" "${run[@]}" --accumulate 0 2>&1); rc=$?
[ "$rc" -eq 2 ] && [ "$(wc -l <<<"$out")" -eq 1 ] && grep -q "alexnet: error: --accumulate must be in \[1, --batch-size 64\], got 0" <<<"$out" \
  && ok "--accumulate 0 refused in one line" || bad "--accumulate 0: exit $rc: $out"
out=$("$bin" "${run[@]}" --accumulate 65 2>&1); rc=$?
[ "$rc" -eq 2 ] && [ "$(wc -l <<<"$out")" -eq 1 ] && ok "--accumulate above the batch refused" \
  || bad "--accumulate 65: exit $rc: $out"
out=$("${mpi[@]}" -n 2 "$bin" "${data[@]}" --batch-size 8 --accumulate 5 2>&1); rc=$?
n=$(grep -c "alexnet: error: --accumulate 5 on 2 ranks splits every global batch into 10 slices, more than --batch-size 8 samples" <<<"$out")
[ "$rc" -eq 2 ] && [ "$n" -eq 1 ] && [ "$(grep -c "alexnet: error" <<<"$out")" -eq 1 ] \
  && ok "K x ranks above the batch: exit 2, one line" || bad "K x ranks > batch: exit $rc, $n: $out"
out=$("$bin" "${run[@]}" --accumulate 4 --print-config 2>&1)
grep -q "^accumulate = 4$" <<<"$out" && ok "--print-config shows accumulate" || bad "print-config: $out"

# 2. Started on 4 ranks with K = 1 (one epoch), resumed on 2 ranks with --accumulate 2: the
#    same samples per step, so the parameters of the straight run up to summation order.
"${mpi[@]}" -n 4 "$bin" "${run[@]}" --epochs 2 --checkpoint-dir "$tmp/straight" >"$tmp/straight.log" 2>&1 \
  || bad "straight run on 4 ranks: $(tail -5 "$tmp/straight.log")"
final="$tmp/straight/ckpt-epoch0002-step00000008.h5"
[ -f "$final" ] && ok "straight run on 4 ranks" || bad "no $final: $(ls "$tmp/straight")"
"${mpi[@]}" -n 4 "$bin" "${run[@]}" --epochs 1 --checkpoint-dir "$tmp/resumed" >/dev/null 2>&1 \
  || bad "first epoch on 4 ranks"
out=$("${mpi[@]}" -n 2 "$bin" "${run[@]}" --epochs 2 --accumulate 2 --checkpoint-dir "$tmp/resumed" --resume auto 2>&1); rc=$?
[ "$rc" -eq 0 ] && grep -q "resuming from .*ckpt-epoch0001-step00000004.h5 (run .*, written by 4 ranks)" <<<"$out" \
  && grep -q "global batch 64 in 2 micro-batches of 32 (--accumulate), each split 16 per rank" <<<"$out" \
  && ok "4 ranks resumed on 2 with --accumulate 2" || bad "resume with --accumulate 2: exit $rc: $out"
if diff=$(close "$final" "$tmp/resumed/ckpt-epoch0002-step00000008.h5" 1e-5); then
  ok "resumed on 2 ranks x 2 micro-batches = straight on 4 ranks ($diff)"
else
  bad "resumed with --accumulate differs from the straight run: $diff"
fi
grep "^epoch 2," "$tmp/straight.log" | cut -d, -f1-3 >"$tmp/a"; grep "^epoch 2," <<<"$out" | cut -d, -f1-3 >"$tmp/b"
cmp -s "$tmp/a" "$tmp/b" && ok "same epoch-2 loss and accuracy" || bad "metrics differ: $(cat "$tmp/a") / $(cat "$tmp/b")"
# A changed global batch is still refused, and the message says what may change.
out=$("${mpi[@]}" -n 2 "$bin" "${data[@]}" --batch-size 32 --accumulate 2 --epochs 2 --checkpoint-dir "$tmp/resumed" --resume "$tmp/resumed/ckpt-epoch0001-step00000004.h5" 2>&1); rc=$?
[ "$rc" -eq 2 ] && [ "$(grep -c "written with a global batch of 64, this run has 32 (a resumed run keeps the global batch; the number of ranks and --accumulate may change)" <<<"$out")" -eq 1 ] \
  && ok "a changed global batch is refused in one line" || bad "changed batch: exit $rc: $out"

# 3. A stop request in the middle of step 7's first micro-batch (rank 0 alone): the step is
#    abandoned, step 6's checkpoint written; resumed with the same ranks and K it is bitwise the
#    straight run, and on 1 rank with --accumulate 4 the same up to summation order.
"${mpi[@]}" -n 2 "$bin" "${run[@]}" --epochs 2 --accumulate 2 --checkpoint-dir "$tmp/k2" >/dev/null 2>&1 \
  || bad "straight run on 2 ranks x 2"
"${mpi[@]}" -n 2 "$bin" "${run[@]}" --epochs 2 --accumulate 2 --checkpoint-dir "$tmp/mid" \
  --debug-fault stop-in-step:7 >"$tmp/mid1.log" 2>&1
rc=$?
[ "$rc" -eq 3 ] && grep -q "stopped on request at step 6 (the step in progress was abandoned, not applied); checkpoint ckpt-epoch0002-step00000006.h5 written" "$tmp/mid1.log" \
  && ok "a stop within a micro-batch abandons the step" || bad "mid-step stop: exit $rc: $(cat "$tmp/mid1.log")"
mkdir -p "$tmp/one" && cp "$tmp/mid/ckpt-epoch0002-step00000006.h5" "$tmp/one/"
"${mpi[@]}" -n 2 "$bin" "${run[@]}" --epochs 2 --accumulate 2 --checkpoint-dir "$tmp/mid" --resume auto >"$tmp/mid2.log" 2>&1 \
  || bad "mid-step resume: $(tail -5 "$tmp/mid2.log")"
same_state "$tmp/k2/ckpt-epoch0002-step00000008.h5" "$tmp/mid/ckpt-epoch0002-step00000008.h5" \
  && ok "stop in a micro-batch and resume is bitwise exact" || bad "mid-step resumed run differs"
"$bin" "${run[@]}" --epochs 2 --accumulate 4 --checkpoint-dir "$tmp/one" --resume auto >"$tmp/one.log" 2>&1 \
  || bad "resume on 1 rank with --accumulate 4: $(tail -5 "$tmp/one.log")"
if diff=$(close "$tmp/k2/ckpt-epoch0002-step00000008.h5" "$tmp/one/ckpt-epoch0002-step00000008.h5" 1e-5); then
  ok "resumed on 1 rank x 4 micro-batches = 2 ranks x 2 ($diff)"
else
  bad "1 rank x 4 differs: $diff"
fi

echo "$pass passed, $fails failed"
[ "$fails" -eq 0 ]
