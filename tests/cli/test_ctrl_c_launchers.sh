#!/usr/bin/env bash
# One real Ctrl-C -- a ^C typed on a pseudo-terminal, so the terminal sends SIGINT to its
# foreground process group -- in front of the launchers users type, for a run whose steps take
# longer than Open MPI's grace period (mpirun answers SIGINT with SIGTERM to the ranks 1 s later
# and SIGKILL 1 s after that):
#   A. plain mpiexec: the ranks stop -- abandoning the step in progress, or at a step boundary if
#      the Ctrl-C lands there -- and rank 0 checkpoints the last completed step within the grace
#      period (given 4 s; with the default 1 s the write may also be cut, leaving no checkpoint
#      file); resuming finishes bitwise like an uninterrupted run.
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

# A. Plain mpiexec. Where the Ctrl-C lands decides which of two correct stops happens: inside a
#    step, that step is abandoned (not applied) and the checkpoint is the last completed step;
#    between steps (the vote at a step's end already saw it), that step is applied and the stop
#    comes at its boundary. Either way the message names step N, the checkpoint is step N (its
#    name and its /step attribute), N is at least the last step the progress line showed, and
#    the resumed run ends bitwise like the uninterrupted one.
#    A1 gives the ranks a longer grace period, as docs/training.md tells users to
#    (odls_base_sigkill_timeout 4: Open MPI sends SIGTERM 4 s after the Ctrl-C and SIGKILL 4 s
#    after that), so the checkpoint must be written: the Ctrl-C comes after step 1, and the 7
#    steps left take more than 4 s (the premise above: a step takes more than 1 s), so SIGTERM
#    lands while the run is going; a LeNet checkpoint then has 4 s, 40 times what it needs here. A2 keeps Open MPI's default of 1 s: the
#    write then fits or is cut by SIGKILL, depending on the machine's load -- both are correct
#    provided that a cut write leaves no checkpoint file (at most its hidden temporary file) and
#    the resume still ends bitwise like the uninterrupted run. Nothing here depends on timing.
check_mpiexec_stop() {  # NAME DIR MUST_WRITE OUTPUT RC
  local name=$1 dir=$2 must=$3 out=$4 rc=$5
  local stop_line n ck shown ck_attr when
  stop_line=$(grep -E "stopped on request at step [0-9]+" <<<"$out" | tail -1)
  n=$(grep -oE "stopped on request at step [0-9]+" <<<"$stop_line" | grep -oE "[0-9]+$")
  ck=$(grep -oE "checkpoint ckpt-epoch0001-step[0-9]{8}\.h5 written" <<<"$stop_line" | grep -oE "step[0-9]{8}" | grep -oE "[1-9][0-9]*$")
  shown=$(grep -oE "step [0-9]+/8" <<<"$out" | tail -1 | grep -oE "[0-9]+/" | tr -d /)
  if [ -z "$stop_line" ] && [ "$must" = no ]; then
    # The write was cut short by SIGKILL: no checkpoint may look complete.
    ls "$dir"/ckpt-*.h5 >/dev/null 2>&1 \
      && bad "$name: killed before its stop line, yet a checkpoint file exists: $(ls -a "$dir")" \
      || ok "$name: the stop's write did not fit Open MPI's 1 s grace period on this machine now; no checkpoint file claims it (exit $rc)"
  else
    ck_attr=$(h5dump -a /step "$dir/ckpt-epoch0001-step$(printf %08d "${ck:-0}").h5" 2>/dev/null | grep -oE "\(0\): [0-9]+" | grep -oE "[0-9]+$")
    if grep -q "(the step in progress was abandoned, not applied)" <<<"$stop_line"; then
      when="inside step $((${n:-0} + 1)): that step was abandoned"
    else
      when="at the boundary after step ${n:-?}"
    fi
    [ -n "$n" ] && [ "$n" = "${ck:-x}" ] && [ "$n" = "${ck_attr:-y}" ] && [ "$n" -ge "${shown:-99}" ] && [ "$n" -lt 8 ] \
      && ok "$name: Ctrl-C $when; checkpoint of step $n (the last completed step) written (mpiexec exit $rc)" \
      || bad "$name + Ctrl-C: exit $rc; message step '${n:-none}', checkpoint name step '${ck:-none}', its /step '${ck_attr:-none}', progress shown up to step '${shown:-none}': $out"
    ls "$dir"/.ckpt-* >/dev/null 2>&1 && bad "$name: an unfinished temporary file was left after a written checkpoint: $(ls -a "$dir")" \
      || ok "$name: no unfinished checkpoint left behind"
  fi
  "${mpi[@]}" -n 2 "$bin" "${run[@]}" --checkpoint-dir "$dir" --resume auto >"$dir.log" 2>&1
  same_state "$final" "$dir/$(basename "$final")" && ok "$name: Ctrl-C, resume: bitwise the uninterrupted run" \
    || bad "$name: the resumed run differs: $(cat "$dir.log")"
  ls "$dir"/.ckpt-* >/dev/null 2>&1 && bad "$name: the resumed run left a temporary file: $(ls -a "$dir")" \
    || ok "$name: nothing temporary left after the resume"
}
out=$(ctrl_c --after "step 1/8" --timeout 120 -- "${mpi[@]}" --mca odls_base_sigkill_timeout 4 -n 2 "$bin" "${run[@]}" --checkpoint-dir "$tmp/a" 2>&1)
check_mpiexec_stop "mpiexec (grace 4 s)" "$tmp/a" yes "$out" $?
out=$(ctrl_c --after "step 2/8" --timeout 120 -- "${mpi[@]}" -n 2 "$bin" "${run[@]}" --checkpoint-dir "$tmp/a2" 2>&1)
check_mpiexec_stop "mpiexec (default grace)" "$tmp/a2" no "$out" $?

# B. launch/run-local.
out=$(ALEXNET=$bin ctrl_c --after "step 2/8" --timeout 120 -- "$src/launch/run-local" -np 2 "${run[@]}" --checkpoint-dir "$tmp/b" 2>&1)
rc=$?
[ "$rc" -eq 3 ] && ok "run-local: Ctrl-C exits 3 (stopped on request)" || bad "run-local + Ctrl-C: exit $rc: $out"
n=$(grep -oE "stopped on request at step [0-9]+" <<<"$out" | tail -1 | grep -oE "[0-9]+$")
grep -qE "stopped on request at step ${n:-x}( \(the step in progress was abandoned, not applied\))?; checkpoint ckpt-epoch0001-step$(printf %08d "${n:-0}")\.h5 written" <<<"$out" \
  && ok "run-local: checkpoint of step $n written" || bad "run-local: no checkpoint message naming the stop's step: $out"
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
