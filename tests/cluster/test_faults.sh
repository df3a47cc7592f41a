#!/usr/bin/env bash
# Network faults on a cluster of two namespace nodes (launch/cluster), 2 ranks each:
#  1. A partition: node2's link is cut while the job trains. The ranks on node1 time out
#     (--comm-timeout), ask node2's progress server, get no answer and name ranks 2-3 on node2
#     as unreachable; every rank process on both nodes ends within the timeout plus the bounded
#     question (3 s) and the abort's grace (10 s), although the launcher cannot reach node2.
#  2. A lost node: every process of node2 is killed while the job trains. The job ends, and
#     --resume auto on node1 alone (2 ranks) continues from the newest checkpoint in the shared
#     directory exactly as a 2-rank run on one host continues from the same checkpoint.
# Skips (exit 77) where namespaces cannot be made. Every wait is bounded.
#   test_faults.sh PATH/TO/alexnet
source "$(dirname "$0")/lib.sh"
out=$("$cluster" up --dir "$dir" --nodes 2 --slots 2 2>&1) || { echo "FAIL: up: $out"; exit 1; }

# alexnet processes in the nodes' network namespaces.
netns=()
for p in $(python3 -c "import json; print(' '.join(str(n['pid']) for n in json.load(open('$dir/cluster.json'))['nodes']))"); do
  netns+=("$(readlink "/proc/$p/ns/net")")
done
ranks_alive() {
  local n=0 p
  for p in /proc/[0-9]*; do
    [ "$(cat "$p/comm" 2>/dev/null)" = alexnet ] || continue
    [ "$(awk '{print $3}' "$p/stat" 2>/dev/null)" = Z ] && continue
    case " ${netns[*]} " in *" $(readlink "$p/ns/net" 2>/dev/null) "*) n=$((n + 1)) ;; esac
  done
  echo "$n"
}
wait_for_file() {  # glob, seconds
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    compgen -G "$1" >/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# 1. Partition.
timeout=10
run=(--model lenet --dataset synthetic --synthetic-shape 1x28x28 --synthetic-train-size 200000
  --synthetic-test-size 64 --batch-size 64 --lr 0.02 --progress off)
timeout 300 "$cluster" exec --dir "$dir" node1 -- mpirun -q -n 4 --hostfile "$dir/hostfile" -x OMP_NUM_THREADS=1 \
  "$bin" "${run[@]}" --epochs 1 --comm-timeout "$timeout" --checkpoint-dir "$dir/shared/p" \
  --checkpoint-every 4steps >"$tmp/p.log" 2>&1 &
job=$!
if wait_for_file "$dir/shared/p/ckpt-*.h5" 120; then
  "$cluster" link --dir "$dir" node2 down >/dev/null
  cut=$(date +%s)
  for ((i = 0; i < 600; i++)); do [ "$(ranks_alive)" -eq 0 ] && break; sleep 0.1; done
  took=$(($(date +%s) - cut))
  left=$(ranks_alive)
  [ "$left" -eq 0 ] && [ "$took" -le $((timeout + 3 + 10 + 10)) ] \
    && ok "partition: every rank on both nodes ended ${took} s after the cut (--comm-timeout $timeout)" \
    || bad "partition: $left rank processes left after ${took} s"
  # The launcher itself waits for node2's daemon until the link is back.
  "$cluster" link --dir "$dir" node2 up >/dev/null
  for ((i = 0; i < 600; i++)); do kill -0 "$job" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$job" 2>/dev/null && { pkill -KILL -f "mpirun -q -n 4 --hostfile $dir/hostfile"; sleep 1; }
  wait "$job"
  rc=$?
  line=$(grep -E "^\[rank [01] node1\] alexnet: error: all-reduce of [0-9]+ (floats|doubles) \(collective #[0-9]+ on this communicator\) did not complete within --comm-timeout $timeout s; (ranks that have not reached it: [^;]*; )?ranks 2-3 on node2 unreachable \(no answer within 3 s: a network partition, or the node is lost\) -- aborting the job$" "$tmp/p.log" | head -1)
  [ "$rc" -ne 0 ] && [ -n "$line" ] && ok "partition: the job failed (exit $rc) and node1's ranks name ranks 2-3 on node2 as unreachable" \
    || bad "partition: exit $rc: $(grep -v '^\[node' "$tmp/p.log" | tail -5)"
else
  bad "partition: no checkpoint within 120 s: $(tail -5 "$tmp/p.log")"
  kill "$job" 2>/dev/null
fi
# Whatever the partition left (the launcher's daemon on node2) goes before the next part.
"$cluster" kill --dir "$dir" node1 >/dev/null
"$cluster" kill --dir "$dir" node2 >/dev/null

# 2. A lost node: its processes killed after the first checkpoint; resume on node1 alone.
run=(--model lenet --dataset synthetic --synthetic-shape 1x28x28 --synthetic-train-size 2048
  --synthetic-test-size 64 --batch-size 64 --lr 0.02 --momentum 0.9 --progress off --epochs 5
  --checkpoint-every 4steps --keep-checkpoints 100)
timeout 300 "$cluster" exec --dir "$dir" node1 -- mpirun -q -n 4 --hostfile "$dir/hostfile" -x OMP_NUM_THREADS=1 \
  "$bin" "${run[@]}" --checkpoint-dir "$dir/shared/l" >"$tmp/l.log" 2>&1 &
job=$!
if wait_for_file "$dir/shared/l/ckpt-*.h5" 120; then
  "$cluster" kill --dir "$dir" node2 >/dev/null
  for ((i = 0; i < 600; i++)); do kill -0 "$job" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$job" 2>/dev/null; then
    bad "lost node: the job still runs 60 s after node2's processes were killed"
    kill "$job"
  fi
  wait "$job"
  rc=$?
  [ "$rc" -ne 0 ] && ! ls "$dir/shared/l" | grep -q "step00000160" \
    && ok "lost node: the job ended (exit $rc) before its end" || bad "lost node: exit $rc: $(tail -5 "$tmp/l.log")"
  newest=$(ls "$dir/shared/l"/ckpt-*.h5 | sort | tail -1)
  mkdir -p "$tmp/ref" && cp "$newest" "$tmp/ref/"
  out=$(timeout 300 "$cluster" exec --dir "$dir" node1 -- mpirun -q -n 2 --host node1:2 -x OMP_NUM_THREADS=1 \
    "$bin" "${run[@]}" --checkpoint-dir "$dir/shared/l" --resume auto 2>&1)
  rc=$?
  [ "$rc" -eq 0 ] && grep -q "resuming from $newest (run .*, written by 4 ranks)" <<<"$out" \
    && ok "lost node: --resume auto on node1 alone (2 ranks) continues from $(basename "$newest")" \
    || bad "lost node resume: exit $rc: $out"
  # The same continuation on one host, 2 ranks, from the same checkpoint.
  out=$(OMP_NUM_THREADS=1 timeout 300 mpiexec --oversubscribe -n 2 "$bin" "${run[@]}" --checkpoint-dir "$tmp/ref" \
    --resume auto 2>&1) || bad "reference: $out"
  final=ckpt-epoch0005-step00000160.h5
  if h5diff "$tmp/ref/$final" "$dir/shared/l/$final" /params /params >/dev/null \
    && h5diff "$tmp/ref/$final" "$dir/shared/l/$final" /momentum /momentum >/dev/null; then
    ok "lost node: the resumed run's parameters and momentum equal a one-host 2-rank continuation, bit for bit"
  else
    bad "lost node: resumed run differs: $(/usr/bin/python3 "$here/checkpoint/compare_checkpoints.py" "$tmp/ref/$final" "$dir/shared/l/$final" 0 2>&1)"
  fi
else
  bad "lost node: no checkpoint within 120 s: $(tail -5 "$tmp/l.log")"
  kill "$job" 2>/dev/null
fi

echo "$pass passed, $fails failed"
[ "$fails" -eq 0 ]
