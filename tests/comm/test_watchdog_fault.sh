#!/usr/bin/env bash
# A rank that never reaches a collective (watchdog_fault.cpp), on 2 and 3 ranks, late rank first
# or last: every watchdog that fires names that rank (read from the progress board, not from the
# stuck collective), with its host and the last collective it finished; no rank announces a stop
# that saves a checkpoint while the job is being aborted; each rank that aborts leaves its own
# timeline rows in TIMELINE.rank<r>.
#   test_watchdog_fault.sh PATH/TO/watchdog_fault MPIEXEC [MPIEXEC FLAGS...]
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
host=$(hostname)

for n in 2 3; do
  for late in 0 $((n - 1)); do
    what="$n ranks, rank $late late"
    rm -f "$tmp"/t.json*
    out=$(timeout 120 "${mpi[@]}" -n "$n" "$bin" "$late" "$tmp/t.json" 2>&1)
    rc=$?
    lines=$(grep -E "alexnet: error: all-reduce of 2 doubles \(collective #4 on this communicator\) did not complete within --comm-timeout 2 s" <<<"$out")
    count=$(grep -c . <<<"$lines")
    named=$(grep -cE "; ranks that have not reached it: $late \(${host}, last finished collective #3\) -- aborting the job$" <<<"$lines")
    [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && [ "$count" -ge 1 ] && [ "$named" -eq "$count" ] \
      && ok "$what: $count watchdog line(s), each naming rank $late alone (exit $rc)" \
      || bad "$what: exit $rc, $named of $count watchdog lines name rank $late alone: $out"
    grep -qE "stop requested|checkpoint" <<<"$out" \
      && bad "$what: a stop or a checkpoint is announced during the abort: $out" \
      || ok "$what: no stop or checkpoint announced during the abort"
    # The ranks whose watchdog fired wrote their rows; the late rank's, if any, is a bonus.
    for r in $(grep -oE "^\[rank [0-9]+ [^]]+\] alexnet: error: all-reduce" <<<"$lines" | grep -oE "^\[rank [0-9]+" | grep -oE "[0-9]+$"); do
      if python3 - "$tmp/t.json.rank$r" "$r" <<'PY'
import json, sys
t = json.load(open(sys.argv[1])); r = int(sys.argv[2])
assert t["otherData"]["partial"] is True and t["otherData"]["rank"] == r, t["otherData"]
steps = sorted(e["name"] for e in t["traceEvents"] if e["ph"] == "X" and e["pid"] == r)
assert steps[:3] == ["step 0", "step 1", "step 2"], steps
assert all(e["pid"] == r for e in t["traceEvents"]), "rows of another rank"
PY
      then
        grep -q "^\[rank $r [^]]*\] alexnet: timeline: this rank's [0-9]* events written to $tmp/t.json.rank$r" <<<"$out" \
          && ok "$what: rank $r wrote its own timeline rows to t.json.rank$r and said so" \
          || bad "$what: rank $r wrote t.json.rank$r without saying so: $out"
      else
        bad "$what: rank $r's timeline rows: $(ls "$tmp"; cat "$tmp/t.json.rank$r" 2>/dev/null | head -c 400)"
      fi
    done
  done
done

# Two late ranks of four: both named, in rank order, by every watchdog that fires.
out=$(timeout 120 "${mpi[@]}" -n 4 "$bin" 1,2 "$tmp/q.json" 2>&1)
rc=$?
lines=$(grep -E "alexnet: error: all-reduce of 2 doubles .* did not complete" <<<"$out")
count=$(grep -c . <<<"$lines")
named=$(grep -cE "; ranks that have not reached it: 1 \(${host}, last finished collective #3\), 2 \(${host}, last finished collective #3\) -- aborting" <<<"$lines")
[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && [ "$count" -ge 1 ] && [ "$named" -eq "$count" ] \
  && ok "4 ranks, ranks 1 and 2 late: each watchdog line names both" \
  || bad "4 ranks, ranks 1 and 2 late: exit $rc, $named of $count lines name both: $out"

# Reading every peer through MPI one-sided gets (DISTNET_PROGRESS_RMA=force), as for ranks on
# other hosts, over shared memory and over TCP alone (where Open MPI 4 cannot make the window
# with MPI_THREAD_MULTIPLE): either the late rank is named, or the watchdog says it could not
# tell and why -- never another rank.
for btl in "" "--mca btl tcp,self"; do
  # shellcheck disable=SC2086
  out=$(DISTNET_PROGRESS_RMA=force timeout 120 "${mpi[@]}" $btl -x DISTNET_PROGRESS_RMA -n 2 "$bin" 1 "$tmp/r.json" 2>&1)
  rc=$?
  line=$(grep -E "alexnet: error: all-reduce of 2 doubles .* did not complete" <<<"$out" | head -1)
  if grep -qE "; ranks that have not reached it: 1 \(${host}, last finished collective #3\) -- aborting" <<<"$line"; then
    ok "one-sided reads${btl:+ ($btl)}: rank 1 named"
  elif grep -qE "; could not tell which rank: could not read the progress of rank 1( \([^)]*\))? -- aborting" <<<"$line"; then
    ok "one-sided reads${btl:+ ($btl)}: the watchdog says $(sed 's/.*could not tell/could not tell/' <<<"$line")"
  else
    bad "one-sided reads${btl:+ ($btl)}: exit $rc: $out"
  fi
done

# Reading every peer through the hosts' TCP progress servers (DISTNET_PROGRESS_TCP=force), as for
# ranks on other hosts: the late rank is named exactly as from shared memory, on 2 and 3 ranks.
for n in 2 3; do
  out=$(DISTNET_PROGRESS_TCP=force timeout 120 "${mpi[@]}" -x DISTNET_PROGRESS_TCP -n "$n" "$bin" 1 "$tmp/p.json" 2>&1)
  rc=$?
  lines=$(grep -E "alexnet: error: all-reduce of 2 doubles .* did not complete" <<<"$out")
  count=$(grep -c . <<<"$lines")
  named=$(grep -cE "; ranks that have not reached it: 1 \(${host}, last finished collective #3\) -- aborting the job$" <<<"$lines")
  [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && [ "$count" -ge 1 ] && [ "$named" -eq "$count" ] \
    && ok "TCP progress servers, $n ranks: every watchdog line names rank 1 alone" \
    || bad "TCP progress servers, $n ranks: exit $rc, $named of $count lines name rank 1: $out"
done

echo "$pass passed, $fails failed"
[ "$fails" -eq 0 ]
