#!/usr/bin/env bash
# The one abort path (include/distnet/abort.hpp; docs/reliability.md, "A rank that fails alone"):
# a rank that fails alone in the middle of a step, its gradient buckets in flight
# (--debug-fault error-in-step:R:S), ends the whole job at once -- the other ranks are told
# (MPI_Abort) before any destructor runs, so none of them waits out --comm-timeout -- with one
# line naming the rank and the cause.
#   test_abort_path.sh cpu PATH/TO/alexnet MPIEXEC [MPIEXEC FLAGS...]   2 ranks and 1 rank on CPUs
#   test_abort_path.sh gpu PATH/TO/alexnet                             1 rank on a GPU (exit 77,
#                                                                      skipped, without one)
set -u
mode=$1
bin=$2
shift 2
mpi=("$@")
fails=0
pass=0
ok() { echo "ok: $1"; pass=$((pass + 1)); }
bad() { echo "FAIL: $1"; fails=$((fails + 1)); }
common=(--model lenet --dataset synthetic --synthetic-test-size 128 --batch-size 128 --epochs 1
  --workers 1 --progress off)
run=("${common[@]}" --synthetic-train-size 1024 --comm-timeout 60)
msg="alexnet: error: --debug-fault error-in-step: rank"

# Runs the command; sets out, rc and secs (wall time).
timed() {
  local t0=$SECONDS
  out=$("$@" 2>&1)
  rc=$?
  secs=$((SECONDS - t0))
}

if [ "$mode" = cpu ]; then
  # Two ranks: rank 1 fails in step 2, rank 0 is already waiting for its gradients.
  timed "${mpi[@]}" -n 2 "$bin" "${run[@]}" --debug-fault error-in-step:1:2
  [ "$rc" -ne 0 ] && ok "2 ranks: the job fails (exit $rc)" || bad "2 ranks: exit 0: $out"
  n=$(grep -c "^\[rank 1 [^]]*\] $msg 1 fails in the middle of step 2$" <<<"$out")
  [ "$n" -eq 1 ] && ok "2 ranks: one line naming rank 1, its host and the cause" \
    || bad "2 ranks: the failing rank's line appears $n times: $out"
  ! grep -q "did not complete within --comm-timeout" <<<"$out" \
    && ok "2 ranks: no rank waited out --comm-timeout (the abort told them)" \
    || bad "2 ranks: a rank timed out instead of being told: $out"
  ! grep -q "stopped on request\|checkpoint" <<<"$out" \
    && ok "2 ranks: nothing announces a stop or a checkpoint" || bad "2 ranks: $out"
  [ "$secs" -lt 50 ] && ok "2 ranks: ended in ${secs} s (timeout 60 s)" \
    || bad "2 ranks: took ${secs} s: $out"

  # One rank: nobody to tell; the communicators are revoked and aborted, exit 1.
  timed "$bin" "${run[@]}" --debug-fault error-in-step:0:3
  [ "$rc" -eq 1 ] && ok "1 rank: exit 1" || bad "1 rank: exit $rc: $out"
  [ "$(grep -c "^$msg 0 fails in the middle of step 3$" <<<"$out")" -eq 1 ] \
    && ok "1 rank: one line, no rank prefix" || bad "1 rank: $out"

  # Agreed errors still end every rank with its code, without an abort (divergence: 4).
  timed "${mpi[@]}" -n 2 "$bin" "${run[@]}" --debug-fault nonfinite:1:2
  [ "$rc" -eq 4 ] && ok "agreed error: every rank exits 4, no abort" || bad "agreed: exit $rc: $out"
else
  # A CUDA backend must come up (it fails fast, exit 2, where it cannot).
  probe=$("$bin" --device cuda "${common[@]}" --synthetic-train-size 128 2>&1) || {
    if grep -q -- "--device cuda:" <<<"$probe"; then
      echo "SKIP: no usable GPU: $(grep -o -- 'error: --device cuda:.*' <<<"$probe" | head -1)"
      exit 77
    fi
    echo "FAIL: the GPU probe run failed: $probe"
    exit 1
  }
  # One rank on a GPU, NCCL's buckets queued behind the step when it fails: the abort path
  # (revoke, abort, then the destructors) must end the process within --comm-timeout.
  timed "$bin" --device cuda --comm nccl "${common[@]}" --synthetic-train-size 1024 \
    --comm-timeout 20 --debug-fault error-in-step:0:3
  [ "$rc" -eq 1 ] && ok "GPU, 1 rank: exit 1" || bad "GPU, 1 rank: exit $rc: $out"
  grep -q "^$msg 0 fails in the middle of step 3$" <<<"$out" \
    && ok "GPU, 1 rank: the line names the cause" || bad "GPU, 1 rank: $out"
  ! grep -q "GPU work still queued at exit" <<<"$out" \
    && ok "GPU, 1 rank: the queue drained after the abort" || bad "GPU, 1 rank: $out"
  [ "$secs" -lt 20 ] && ok "GPU, 1 rank: ended in ${secs} s (timeout 20 s)" \
    || bad "GPU, 1 rank: took ${secs} s: $out"
fi
echo "$pass passed, $fails failed"
[ "$fails" -eq 0 ]
