#!/usr/bin/env bash
# slurm/alexnet.sbatch end to end on a local one-node Slurm started here (CPU backend, 2 tasks):
# submit, interrupt with a signal, see the checkpoint and the requeue, and check that the
# resumed job finishes with exactly the parameters of an uninterrupted run.
#   test_slurm_requeue.sh PATH/TO/alexnet MPIEXEC [MPIEXEC FLAGS...]
set -u
bin=$1
shift
mpi=("$@")
src=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
pass=0
fails=0
ok() { echo "ok: $1"; pass=$((pass + 1)); }
bad() { echo "FAIL: $1"; fails=$((fails + 1)); }
cleanup() {
  bash "$src/tests/slurm/local_cluster.sh" stop "$tmp/cluster" >/dev/null 2>&1
  rm -rf "$tmp"
}
trap cleanup EXIT

for tool in sbatch slurmctld slurmd munged h5diff; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool not found (launch/setup installs it)"; exit 1; }
done
# (eval of an empty string succeeds, so the start's own status is checked first.)
cluster=$(bash "$src/tests/slurm/local_cluster.sh" start "$tmp/cluster") \
  || { echo "FAIL: could not start a local Slurm (the reason is above)"; exit 1; }
eval "$cluster"

cat >"$tmp/run.ini" <<INI
model = lenet
resize = 0
train-limit = 12000
test-limit = 500
lr = 0.1
momentum = 0.9
epochs = 2
workers = 1
checkpoint-every = 10steps
INI

# The reference: the same run without interruption.
"${mpi[@]}" -n 2 "$bin" --config "$tmp/run.ini" --checkpoint-dir "$tmp/straight" >/dev/null 2>&1 \
  && ok "uninterrupted reference run" || bad "reference run failed"

# The job script as shipped, minus its GPU request (this node has none).
sed '/^#SBATCH --gpus-per-task/d' "$src/slurm/alexnet.sbatch" >"$tmp/cpu.sbatch"
cd "$tmp"
job=$(ALEXNET="$bin" CONFIG="$tmp/run.ini" CHECKPOINT_DIR="$tmp/ckpt" sbatch --parsable --nodes=1 \
  --ntasks-per-node=2 --cpus-per-task=1 --time=10 --output="$tmp/job.out" "$tmp/cpu.sbatch")
[ -n "$job" ] && ok "submitted job $job" || bad "sbatch failed"

# Once the first checkpoint exists, signal the batch shell as --signal=B:USR1@120 would.
for _ in $(seq 240); do ls "$tmp"/ckpt/ckpt-*.h5 >/dev/null 2>&1 && break; sleep 0.5; done
scancel --signal=USR1 --batch "$job"

state=""
for _ in $(seq 300); do
  info=$(scontrol show job "$job" 2>/dev/null)
  state=$(grep -oE "JobState=[A-Z]+" <<<"$info" | cut -d= -f2)
  restarts=$(grep -oE "Restarts=[0-9]+" <<<"$info" | cut -d= -f2)
  # Slurm holds a requeued job back for a while (until the old step is surely gone); on this
  # test cluster, let it start as soon as the node is idle again.
  if [ "$state" = PENDING ] && [ "${restarts:-0}" -ge 1 ] && sinfo -h -o %t | grep -qx idle; then
    sleep 2
    scontrol update jobid="$job" StartTime=now >/dev/null 2>&1
  fi
  [ "$state" = COMPLETED ] || [ "$state" = FAILED ] || [ "$state" = CANCELLED ] && break
  sleep 1
done
[ "$state" = COMPLETED ] && ok "job completed after the requeue" || bad "job state $state: $(cat "$tmp/job.out")"
log=$(cat "$tmp/job.out")
grep -q "USR1 received: asking the ranks to checkpoint and stop" <<<"$log" && ok "signal forwarded to the step" || bad "no forwarding: $log"
grep -qE "stopped on request at step [0-9]+[^;]*; checkpoint ckpt-[^ ]+ written" <<<"$log" && ok "checkpoint on the signal" || bad "no stop checkpoint: $log"
grep -q "requeueing job $job" <<<"$log" && ok "requeued" || bad "not requeued: $log"
grep -q "restart count 1" <<<"$log" && ok "SLURM_RESTART_COUNT logged" || bad "restart count not logged: $log"
grep -q "resuming from .*ckpt-epoch0001-step" <<<"$log" && ok "resumed from the stop checkpoint" || bad "no resume: $log"

final=$(ls "$tmp"/straight/ckpt-*.h5 | tail -1)
resumed="$tmp/ckpt/$(basename "$final")"
if h5diff "$final" "$resumed" /params /params >/dev/null && h5diff "$final" "$resumed" /momentum /momentum >/dev/null; then
  ok "requeued job ends with exactly the parameters of the uninterrupted run"
else
  bad "parameters differ ($final vs $resumed)"
fi

# slurm/scaling-study.sbatch on the same cluster: 1 and 2 ranks through srun, M = 1 and 2 (the
# hybrid grid on 2 ranks), CSV and plots.
sed '/^#SBATCH --gpus-per-task/d' "$src/slurm/scaling-study.sbatch" >"$tmp/study.sbatch"
job=$(DISTNET_DIR="$src" ALEXNET="$bin" OUT="$tmp/study" MODE=weak REPEAT=1 STEPS=2 WARMUP=1 PER_RANK_BATCH=16 \
  THREADS_PER_RANK=1 MODEL_PARALLEL=1,2 sbatch --parsable --nodes=1 --ntasks-per-node=2 --cpus-per-task=1 --time=10 \
  --output="$tmp/study.out" "$tmp/study.sbatch" -- --model lenet --resize 28)
state=""
for _ in $(seq 300); do
  state=$(scontrol show job "$job" 2>/dev/null | grep -oE "JobState=[A-Z]+" | cut -d= -f2)
  [ "$state" = COMPLETED ] || [ "$state" = FAILED ] || [ "$state" = CANCELLED ] && break
  sleep 1
done
rows=$(tail -n +2 "$tmp/study/scaling.csv" 2>/dev/null | cut -d, -f1,2,17 | tr '\n' ' ')
[ "$state" = COMPLETED ] && [ "$rows" = "weak,1,1 weak,2,1 weak,2,2 " ] && [ -s "$tmp/study/scaling.png" ] \
  && ok "scaling-study.sbatch: CSV rows $rows and a plot" || bad "scaling study job $state: $rows $(tail -5 "$tmp/study.out")"

echo "$pass passed, $fails failed"
[ "$fails" -eq 0 ]
