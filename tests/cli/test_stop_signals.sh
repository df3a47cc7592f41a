#!/usr/bin/env bash
# Stop requests and aborts as alexnet users meet them, under mpiexec:
#   1. SIGHUP to one rank (a closed terminal, a hang-up) stops the job like SIGTERM: exit 3, a
#      checkpoint, and resuming from it ends bitwise like an uninterrupted run.
#   2. A rank that hangs (--debug-delay-rank R:600000): the other ranks' watchdogs name rank R,
#      the one that has not reached the collective, and nothing announces a stop that saves a
#      checkpoint while the job is being aborted.
#   3. A rank killed with -9: the launcher's SIGTERM to the others is not announced as a stop.
#   test_stop_signals.sh PATH/TO/alexnet MPIEXEC [MPIEXEC FLAGS...]
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
host=$(hostname)

# 30 steps of 200 ms or more (rank 0 sleeps that long in each): the signal lands mid-run.
run=(--model lenet --resize 0 --train-limit 3000 --test-limit 200 --batch-size 100 --epochs 1
  --lr 0.05 --momentum 0.9 --workers 1 --progress-interval 0.2 --debug-delay-rank 0:200)

# 1. SIGHUP to rank 1.
"${mpi[@]}" -n 2 "$bin" "${run[@]}" --checkpoint-dir "$tmp/straight" >"$tmp/straight.log" 2>&1 \
  && ok "uninterrupted reference run" || bad "reference run: $(cat "$tmp/straight.log")"
final=$tmp/straight/ckpt-epoch0001-step00000030.h5
[ -f "$final" ] || bad "no final checkpoint: $(ls "$tmp/straight")"
"${mpi[@]}" -n 2 "$bin" "${run[@]}" --checkpoint-dir "$tmp/hup" >"$tmp/hup.log" 2>&1 &
pid=$!
rank1=""
for _ in $(seq 600); do
  if grep -qE "step [0-9]+/30" "$tmp/hup.log" 2>/dev/null; then
    for p in $(pgrep -f "$bin .*$tmp/hup"); do
      tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=1" && rank1=$p
    done
    [ -n "$rank1" ] && break
  fi
  sleep 0.1
done
[ -n "$rank1" ] && kill -HUP "$rank1"
wait "$pid"
rc=$?
n=$(grep -oE "stopped on request at step [0-9]+" "$tmp/hup.log" | grep -oE "[0-9]+$")
[ -n "$rank1" ] && [ "$rc" -eq 3 ] \
  && grep -qE "stopped on request at step $n( \(the step in progress was abandoned, not applied\))?; checkpoint ckpt-epoch0001-step$(printf %08d "${n:-0}")\.h5 written" "$tmp/hup.log" \
  && ok "SIGHUP to rank 1 (pid $rank1): stopped at step $n with a checkpoint, exit 3" \
  || bad "SIGHUP to rank 1 (pid ${rank1:-none}): exit $rc: $(cat "$tmp/hup.log")"
out=$("${mpi[@]}" -n 2 "$bin" "${run[@]}" --checkpoint-dir "$tmp/hup" --resume auto 2>&1)
rc=$?
[ "$rc" -eq 0 ] && grep -q "resuming from .*ckpt-epoch0001-step$(printf %08d "${n:-0}").h5" <<<"$out" \
  && same_state "$final" "$tmp/hup/$(basename "$final")" \
  && ok "SIGHUP, resume from step $n: bitwise the uninterrupted run" || bad "resume after SIGHUP: exit $rc: $out"

# 2. A hung rank: named by the watchdogs of the others; no stop or checkpoint announced.
hang=(--model lenet --resize 0 --train-limit 3000 --test-limit 200 --batch-size 100 --epochs 1
  --workers 1 --comm-timeout 4 --checkpoint-dir "$tmp/hang")
for case in "2 0" "2 1" "3 1"; do
  read -r np late <<<"$case"
  out=$(timeout 120 "${mpi[@]}" -n "$np" "$bin" "${hang[@]}" --debug-delay-rank "$late:600000" 2>&1)
  rc=$?
  lines=$(grep -E "^\[rank [0-9]+ [^]]+\] alexnet: error: .* did not complete within --comm-timeout 4 s" <<<"$out")
  count=$(grep -c . <<<"$lines")
  named=$(grep -cE "; ranks that have not reached it: $late \(${host}, last finished collective #[0-9]+\) -- aborting the job$" <<<"$lines")
  [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && [ "$count" -ge 1 ] && [ "$named" -eq "$count" ] \
    && ok "$np ranks, rank $late hung: the watchdog names rank $late alone: $(head -1 <<<"$lines" | sed 's/.*; ranks/ranks/')" \
    || bad "$np ranks, rank $late hung: exit $rc, $named of $count watchdog lines name rank $late alone: $out"
  grep -qE "stop requested|saving a checkpoint|will save" <<<"$out" \
    && bad "$np ranks, rank $late hung: a stop or checkpoint is announced during the abort: $out" \
    || ok "$np ranks, rank $late hung: no stop or checkpoint announced during the abort"
done

# 3. kill -9 of rank 1: mpiexec then sends SIGTERM to rank 0, which must not announce a stop
#    (rank 1's process is gone, which rank 0 sees on the progress board).
"${mpi[@]}" -n 2 "$bin" "${run[@]}" --checkpoint-dir "$tmp/k9" >"$tmp/k9.log" 2>&1 &
pid=$!
victim=""
for _ in $(seq 600); do
  if grep -qE "step [0-9]+/30" "$tmp/k9.log" 2>/dev/null; then
    for p in $(pgrep -f "$bin .*$tmp/k9"); do
      tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=1" && victim=$p
    done
    [ -n "$victim" ] && break
  fi
  sleep 0.1
done
[ -n "$victim" ] && kill -9 "$victim"
wait "$pid"
rc=$?
[ -n "$victim" ] && [ "$rc" -ne 0 ] && ! grep -qE "stop requested|will save" "$tmp/k9.log" \
  && ok "kill -9 of rank 1: the job ends (exit $rc) and no stop is announced" \
  || bad "kill -9 of rank 1 (pid ${victim:-none}): exit $rc: $(cat "$tmp/k9.log")"

echo "$pass passed, $fails failed"
[ "$fails" -eq 0 ]
