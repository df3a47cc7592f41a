#!/usr/bin/env bash
# One real Ctrl-C -- a ^C typed on a pseudo-terminal, so the terminal sends SIGINT to its
# foreground process group -- in front of the launchers users type, for a run whose steps take
# longer than Open MPI's grace period (mpirun answers SIGINT with SIGTERM to the ranks 1 s later
# and SIGKILL 1 s after that):
#   A. plain mpiexec: the ranks abandon the step in progress and rank 0 checkpoints within the
#      grace period; resuming finishes bitwise like an uninterrupted run.
#   B. launch/run-local: exit 3 ("stopped on request"), no Open MPI boxes; resume is bitwise exact.
#   C. launch/run-local, Ctrl-C twice: every rank ends at once (exit 130).
#   test_ctrl_c_launchers.sh PATH/TO/alexnet MPIEXEC [MPIEXEC FLAGS...]
set -u
bin=$1
shift
mpi=("$@")
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
pass=0
fails=0
tmp=$(mktemp -d)
trap 'pkill -9 -f "$bin .*$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT
ok() { echo "ok: $1"; pass=$((pass + 1)); }
bad() { echo "FAIL: $1"; fails=$((fails + 1)); }
same_state() { h5diff "$1" "$2" /params /params >/dev/null && h5diff "$1" "$2" /momentum /momentum >/dev/null; }
ctrl_c() { python3 "$here/ctrl_c.py" "$@"; }

# 8 steps of 512 images per rank at 56x56: about 1.5 s per step on two cores.
run=(--model lenet --resize 56 --train-limit 8192 --batch-size 1024 --test-limit 200 --workers 1
  --lr 0.05 --momentum 0.9 --epochs 1 --progress-interval 0.5)

"${mpi[@]}" -n 2 "$bin" "${run[@]}" --checkpoint-dir "$tmp/straight" >"$tmp/straight.log" 2>&1 \
  && ok "uninterrupted reference run" || bad "reference run: $(cat "$tmp/straight.log")"
final=$tmp/straight/ckpt-epoch0001-step00000008.h5
[ -f "$final" ] || bad "no final checkpoint in $(ls "$tmp/straight")"
# The premise: a step is longer than the launcher's 1 s grace period.
ips=$(grep -oE "^epoch 1, .* ([0-9.]+) examples/sec" "$tmp/straight.log" | grep -oE "[0-9.]+ examples/sec" | cut -d' ' -f1)
python3 -c "import sys; sys.exit(0 if 1024 / float('${ips:-1e9}') > 1.0 else 1)" \
  && ok "a step takes $(python3 -c "print('%.2f' % (1024 / float('$ips')))") s, longer than mpirun's 1 s grace period" \
  || bad "steps are shorter than 1 s (${ips:-?} examples/sec): this test would not test the grace period"

# A. Plain mpiexec.
out=$(ctrl_c --after "step 2/8" --timeout 120 -- "${mpi[@]}" -n 2 "$bin" "${run[@]}" --checkpoint-dir "$tmp/a" 2>&1)
rc=$?
grep -qE "stopped on request at step [0-9]+ \(the step in progress was abandoned, not applied\); checkpoint ckpt-epoch0001-step0000000[0-7]\.h5 written" <<<"$out" \
  && ok "mpiexec: the step in progress was abandoned and a checkpoint written (mpiexec exit $rc)" \
  || bad "mpiexec + Ctrl-C: exit $rc: $out"
ls "$tmp"/a/.ckpt-* >/dev/null 2>&1 && bad "mpiexec: an unfinished temporary file was left: $(ls -a "$tmp/a")" \
  || ok "mpiexec: no unfinished checkpoint left behind"
"${mpi[@]}" -n 2 "$bin" "${run[@]}" --checkpoint-dir "$tmp/a" --resume auto >"$tmp/a.log" 2>&1
same_state "$final" "$tmp/a/$(basename "$final")" && ok "mpiexec: Ctrl-C, resume: bitwise the uninterrupted run" \
  || bad "mpiexec: the resumed run differs: $(cat "$tmp/a.log")"

# B. launch/run-local.
out=$(ALEXNET=$bin ctrl_c --after "step 2/8" --timeout 120 -- "$src/launch/run-local" -np 2 "${run[@]}" --checkpoint-dir "$tmp/b" 2>&1)
rc=$?
[ "$rc" -eq 3 ] && ok "run-local: Ctrl-C exits 3 (stopped on request)" || bad "run-local + Ctrl-C: exit $rc: $out"
grep -qE "stopped on request at step [0-9]+.*; checkpoint ckpt-epoch0001-step0000000[0-7]\.h5 written" <<<"$out" \
  && ok "run-local: checkpoint written" || bad "run-local: no checkpoint message: $out"
grep -qE -- "^-{20,}|exited with non-zero status|job has been aborted" <<<"$out" \
  && bad "run-local: Open MPI's boxes follow a clean stop: $out" || ok "run-local: no Open MPI boxes after a clean stop"
ALEXNET=$bin "$src/launch/run-local" -np 2 "${run[@]}" --checkpoint-dir "$tmp/b" --resume auto >"$tmp/b.log" 2>&1
same_state "$final" "$tmp/b/$(basename "$final")" && ok "run-local: Ctrl-C, resume: bitwise the uninterrupted run" \
  || bad "run-local: the resumed run differs: $(cat "$tmp/b.log")"

# C. Ctrl-C twice: quit at once.
start=$(date +%s.%N)
out=$(ALEXNET=$bin ctrl_c --after "step 1/8" --presses 2 --gap 0.05 --timeout 120 -- "$src/launch/run-local" -np 2 "${run[@]}" --checkpoint-dir "$tmp/c" 2>&1)
rc=$?
took=$(grep -oE "ended [0-9.]+ s later" <<<"$out" | grep -oE "[0-9.]+")
[ "$rc" -eq 130 ] && ok "run-local: a second Ctrl-C quits (exit 130, ${took:-?} s after the first)" \
  || bad "run-local, two Ctrl-C: exit $rc: $out"
sleep 1
pgrep -f "$bin .*$tmp/c" >/dev/null && bad "ranks still running after the second Ctrl-C" || ok "no rank left running"

echo "$pass passed, $fails failed"
[ "$fails" -eq 0 ]
