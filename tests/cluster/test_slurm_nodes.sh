#!/usr/bin/env bash
# Slurm across three namespace nodes (launch/cluster up --slurm: slurmctld on node1, a slurmd on
# every node): slurm/alexnet.sbatch as shipped (minus its GPU request) with --nodes=2
# --ntasks-per-node=2 runs on node1 and node2, is stopped with scancel --signal=USR1, checkpoints
# into the shared directory and requeues itself; with node1 drained meanwhile, the requeued job
# runs on node2 and node3 and ends with exactly the parameters of an uninterrupted 4-rank run.
# Skips (exit 77) where namespaces cannot be made. Every wait is bounded.
#   test_slurm_nodes.sh PATH/TO/alexnet
source "$(dirname "$0")/lib.sh"
for tool in sbatch slurmctld slurmd munged h5diff; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool not found (launch/setup installs it)"; exit 1; }
done
out=$("$cluster" up --dir "$dir" --nodes 3 --slots 2 --slurm 2>&1) && ok "up: $out" || { echo "FAIL: up: $out"; exit 1; }
on() { "$cluster" exec --dir "$dir" node1 -- "$@"; }
shared=$dir/shared

cat >"$shared/run.ini" <<INI
model = lenet
dataset = synthetic
synthetic-shape = 1x28x28
synthetic-train-size = 4096
synthetic-test-size = 64
batch-size = 64
lr = 0.02
momentum = 0.9
epochs = 2
workers = 1
progress = off
checkpoint-every = 8steps
INI

# The reference: 4 ranks on one host, uninterrupted.
OMP_NUM_THREADS=1 mpiexec --oversubscribe -n 4 "$bin" --config "$shared/run.ini" --checkpoint-dir "$tmp/straight" \
  >"$tmp/straight.log" 2>&1 && ok "uninterrupted reference run (4 ranks, one host)" || bad "reference: $(tail -3 "$tmp/straight.log")"

sed '/^#SBATCH --gpus-per-task/d' "$src/slurm/alexnet.sbatch" >"$shared/cpu.sbatch"
submit() {
  on env ALEXNET="$bin" CONFIG="$shared/run.ini" CHECKPOINT_DIR="$shared/ckpt" sbatch --parsable --nodes=2 \
    --ntasks-per-node=2 --cpus-per-task=1 --time=10 --output="$shared/job.out" "$shared/cpu.sbatch" 2>&1
}
job=$(submit)
[[ "$job" =~ ^[0-9]+$ ]] && ok "sbatch --nodes=2 --ntasks-per-node=2: job $job" || { bad "sbatch: $job"; exit 1; }
first_checkpoint() {  # 0 once a checkpoint exists; 1 if the job ended before one
  for _ in $(seq 240); do
    ls "$shared"/ckpt/ckpt-*.h5 >/dev/null 2>&1 && return 0
    on squeue -h -j "$1" 2>/dev/null | grep -q . || return 1
    sleep 0.5
  done
  return 0
}
# Once (seen 1 time in 7 on a loaded 2-core machine), Open MPI's start-up under srun failed on
# node2 -- a shared-memory segment not found, then a crash -- before any step: the job is
# submitted again then, and the test says so.
if ! first_checkpoint "$job"; then
  echo "note: job $job ended before its first checkpoint; its output:"
  grep -v "ctx rank" "$shared/job.out" | head -20
  mv "$shared/job.out" "$shared/job-first.out"
  rm -rf "$shared/ckpt"
  job=$(submit)
  [[ "$job" =~ ^[0-9]+$ ]] && echo "note: submitted again as job $job" || { bad "sbatch again: $job"; exit 1; }
  first_checkpoint "$job"
fi
first_nodes=$(on squeue -h -j "$job" -o %N)
# The requeued job must land elsewhere: node1 takes no new work from now on.
on scontrol update nodename=node1 state=drain reason=distnet-test >/dev/null
on scancel --signal=USR1 --batch "$job"

state=""
for _ in $(seq 300); do
  info=$(on scontrol show job "$job" 2>/dev/null)
  state=$(grep -oE "JobState=[A-Z]+" <<<"$info" | cut -d= -f2)
  restarts=$(grep -oE "Restarts=[0-9]+" <<<"$info" | cut -d= -f2)
  # Slurm holds a requeued job back for a while (until the old step is surely gone); on this
  # test cluster, let it start as soon as node2 and node3 are idle again (node2's old step may
  # still be ending, and a launch on top of it fails).
  if [ "$state" = PENDING ] && [ "${restarts:-0}" -ge 1 ] \
    && [ "$(on sinfo -h -N -n node2,node3 -o %t | sort -u | tr -d '\n')" = idle ]; then
    sleep 2
    on scontrol update jobid="$job" StartTime=now >/dev/null 2>&1
  fi
  [ "$state" = COMPLETED ] || [ "$state" = FAILED ] || [ "$state" = CANCELLED ] && break
  sleep 1
done
log=$(cat "$shared/job.out" 2>/dev/null)
[ "$state" = COMPLETED ] && ok "job completed after the requeue" || bad "job state $state: $log"
[ "$first_nodes" = "node[1-2]" ] && ok "first run on $first_nodes" || bad "first run on '$first_nodes'"
grep -q "ctx rank 3: host node2, local rank 1" <<<"$log" && grep -q "ctx rank 0: host node1, local rank 0" <<<"$log" \
  && ok "first run: ranks 0-1 on node1, 2-3 on node2" || bad "first run's ranks: $log"
grep -q "USR1 received: asking the ranks to checkpoint and stop" <<<"$log" \
  && grep -qE "stopped on request at step [0-9]+[^;]*; checkpoint ckpt-[^ ]+ written" <<<"$log" \
  && grep -q "requeueing job $job" <<<"$log" && ok "USR1: checkpoint in the shared directory, requeued" \
  || bad "stop and requeue: $log"
grep -q "ctx rank 0: host node2, local rank 0" <<<"$log" && grep -q "ctx rank 3: host node3, local rank 1" <<<"$log" \
  && grep -q "resuming from $shared/ckpt/ckpt-epoch" <<<"$log" \
  && ok "requeued run on node2 and node3 resumed from the shared checkpoint" || bad "second run: $log"
final=$(ls "$tmp"/straight/ckpt-*.h5 | tail -1)
resumed="$shared/ckpt/$(basename "$final")"
if h5diff "$final" "$resumed" /params /params >/dev/null && h5diff "$final" "$resumed" /momentum /momentum >/dev/null; then
  ok "the requeued job ends with exactly the parameters and momentum of the uninterrupted run"
else
  bad "parameters differ ($final vs $resumed): $(/usr/bin/python3 "$src/tests/checkpoint/compare_checkpoints.py" "$final" "$resumed" 0 2>&1)"
fi

echo "$pass passed, $fails failed"
[ "$fails" -eq 0 ]
