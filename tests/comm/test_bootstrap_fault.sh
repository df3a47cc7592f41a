#!/usr/bin/env bash
# A set-up failure on one rank ends every rank within --comm-timeout, with a message naming it
# (stand-ins for ncclGetUniqueId and ncclCommInitRank; see bootstrap_fault.cpp).
#   test_bootstrap_fault.sh PATH/TO/bootstrap_fault MPIEXEC [MPIEXEC FLAGS...]
set -u
bin=$1
shift
mpi=("$@")
pass=0
fails=0
ok() { echo "ok: $1"; pass=$((pass + 1)); }
bad() { echo "FAIL: $1"; fails=$((fails + 1)); }
run() {  # run N MODE: sets out, rc, took
  local t0
  t0=$(date +%s.%N)
  out=$(timeout 60 "${mpi[@]}" -n "$1" "$bin" "$2" 2>&1)
  rc=$?
  took=$(python3 -c "print('%.1f' % ($(date +%s.%N) - $t0))")
}
for n in 2 3; do
  run "$n" ok
  [ "$rc" -eq 0 ] && ok "$n ranks, no failure: exit 0" || bad "$n ranks, ok: exit $rc: $out"

  run "$n" token-fails
  lines=$(grep -c "set-up (stand-in for ncclGetUniqueId) failed on rank 0 ([^)]*): no usable network interface" <<<"$out")
  [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && [ "$lines" -eq "$n" ] \
    && ok "$n ranks, rank 0 cannot make the id: every rank fails with rank 0's reason in ${took} s (exit $rc)" \
    || bad "$n ranks, token-fails: exit $rc after ${took} s, $lines of $n ranks named the cause: $out"

  run "$n" init-fails
  fast=$(python3 -c "print(1 if $took < 20 else 0)")
  [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && [ "$fast" -eq 1 ] \
    && grep -qE "^\[rank [0-9]+\] alexnet: error: initialisation \(stand-in for ncclCommInitRank\) did not complete within --comm-timeout 3 s" <<<"$out" \
    && ok "$n ranks, one rank's initialisation fails: the others' deadline ends the job in ${took} s (exit $rc)" \
    || bad "$n ranks, init-fails: exit $rc after ${took} s: $out"
done
echo "$pass passed, $fails failed"
[ "$fails" -eq 0 ]
