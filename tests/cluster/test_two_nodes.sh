#!/usr/bin/env bash
# Two nodes made by launch/cluster (network, UTS and mount namespaces joined by a bridge) and
# Open MPI across them, as on a real cluster: every rank on its node's hostname with its local
# rank, 2 nodes x 2 ranks take one process's steps (data-parallel, and the hybrid grid with each
# group inside a node), checkpoints in the shared directory resume exactly on another node set
# and world size, a node-local checkpoint directory is refused in one line, and nothing is left
# behind. Skips (exit 77) where namespaces cannot be made.
#   test_two_nodes.sh PATH/TO/alexnet
source "$(dirname "$0")/lib.sh"
links_before=$(ip -o link | awk -F': ' '{print $2}' | sort | tr '\n' ' ')
addrs_before=$(ip -o addr | awk '{print $2, $4}' | sort | tr '\n' ' ')

out=$("$cluster" up --dir "$dir" --nodes 2 --slots 2 2>&1) && ok "up: $out" || { bad "up: $out"; exit 1; }
on() { local node=$1; shift; "$cluster" exec --dir "$dir" "$node" -- "$@"; }

# What a node is: its own hostname, one interface on the cluster's /24 and no other route, its
# own node-local directory at the same path, the shared directory in common.
[ "$(on node1 hostname)" = node1 ] && [ "$(on node2 hostname)" = node2 ] && ok "each node has its hostname" \
  || bad "hostnames: $(on node1 hostname) $(on node2 hostname)"
routes=$(on node2 ip route | tr '\n' ';')
[ "$routes" = "198.18.0.0/24 dev eth0 proto kernel scope link src 198.18.0.2 ;" ] \
  && ok "a node routes only to the cluster's link" || bad "node2 routes: $routes"
[ "$(on node2 ip route get 192.0.2.1 2>&1 | grep -c 'unreachable')" -eq 1 ] && ok "nothing outside is reachable" \
  || bad "route to 192.0.2.1: $(on node2 ip route get 192.0.2.1 2>&1)"
on node1 sh -c "echo one >'$dir/local/mine' && echo both >'$dir/shared/ours'"
[ "$(on node2 sh -c "ls '$dir/local'")" = "" ] && [ "$(on node2 cat "$dir/shared/ours")" = both ] \
  && [ "$(on node1 cat "$dir/local/mine")" = one ] && [ ! -e "$dir/local/mine" ] \
  && ok "node-local directory per node, shared directory in common" || bad "directories"
[ "$(links_now=$(ip -o link | awk -F': ' '{print $2}' | sort | tr '\n' ' '); echo "$links_now")" = "$links_before" ] \
  && ok "no interface in this machine's own namespace" || bad "links now: $(ip -o link)"

# Open MPI across the nodes: 4 ranks by slot, local ranks per node.
out=$(timeout 120 "$cluster" exec --dir "$dir" node1 -- mpirun -n 4 --hostfile "$dir/hostfile" \
  sh -c 'echo "$OMPI_COMM_WORLD_RANK $(hostname) $OMPI_COMM_WORLD_LOCAL_RANK"' 2>&1 | sort)
[ "$(tr '\n' ';' <<<"$out")" = "0 node1 0;1 node1 1;2 node2 0;3 node2 1;" ] \
  && ok "mpirun --hostfile starts ranks 0,1 on node1 and 2,3 on node2" || bad "mpirun: $out"

# LeNet on synthetic 28x28 images, 4 steps of 64 per epoch: short, as rounding differences grow
# over the steps (tests/cli/test_checkpoint_mpi.sh 3c).
data=(--model lenet --dataset synthetic --synthetic-shape 1x28x28 --synthetic-train-size 256
  --synthetic-test-size 64 --batch-size 64 --lr 0.02 --momentum 0.9 --weight-decay 1e-4 --progress off)
mpi4() { timeout 300 "$cluster" exec --dir "$dir" node1 -- mpirun -q -n 4 --hostfile "$dir/hostfile" \
  -x OMP_NUM_THREADS=1 "$bin" "$@"; }
close() { /usr/bin/python3 "$here/checkpoint/compare_checkpoints.py" "$1" "$2" "$3"; }
final=ckpt-epoch0002-step00000008.h5

OMP_NUM_THREADS=1 "$bin" "${data[@]}" --epochs 2 --checkpoint-dir "$tmp/one" >"$tmp/one.log" 2>&1 \
  || bad "one process: $(tail -3 "$tmp/one.log")"
out=$(mpi4 "${data[@]}" --epochs 2 --checkpoint-dir "$dir/shared/dp" 2>&1); rc=$?
[ "$rc" -eq 0 ] && grep -q "ctx rank 2: host node2, local rank 0" <<<"$out" && grep -q "ctx rank 1: host node1, local rank 1" <<<"$out" \
  && ok "alexnet on 2 nodes x 2 ranks: each rank on its host with its local rank" || bad "dp: exit $rc: $out"
if d=$(close "$tmp/one/$final" "$dir/shared/dp/$final" 1e-5); then ok "2 nodes x 2 ranks take one process's steps ($d)"
else bad "data-parallel across nodes vs one process: $d"; fi

out=$(mpi4 "${data[@]}" --epochs 2 --model-parallel 2 --checkpoint-dir "$dir/shared/grid" 2>&1); rc=$?
[ "$rc" -eq 0 ] && grep -q "grid" <<<"$out" || bad "grid: exit $rc: $out"
if d=$(close "$tmp/one/$final" "$dir/shared/grid/$final" 1e-5); then
  ok "--model-parallel 2 with each group inside a node takes one process's steps ($d)"
else bad "grid across nodes vs one process: $d"; fi

# Shared checkpoints: 1 epoch on both nodes (4 ranks), then resumed on node2 alone with 2 ranks.
out=$(mpi4 "${data[@]}" --epochs 1 --checkpoint-dir "$dir/shared/res" 2>&1) || bad "first epoch: $out"
out=$(timeout 300 "$cluster" exec --dir "$dir" node1 -- mpirun -q -n 2 --host node2:2 -x OMP_NUM_THREADS=1 \
  "$bin" "${data[@]}" --epochs 2 --checkpoint-dir "$dir/shared/res" --resume auto 2>&1); rc=$?
[ "$rc" -eq 0 ] && grep -q "ctx rank 0: host node2" <<<"$out" && grep -q "resuming from .*ckpt-epoch0001-step00000004.h5 (run .*, written by 4 ranks)" <<<"$out" \
  && ok "resumed on another node set with 2 ranks from the shared directory" || bad "resume: exit $rc: $out"
if d=$(close "$tmp/one/$final" "$dir/shared/res/$final" 1e-5); then ok "the resumed run ends where one process does ($d)"
else bad "resume across node sets: $d"; fi

# A node-local checkpoint directory: refused on every rank in one line, nothing trained.
out=$(mpi4 "${data[@]}" --epochs 1 --checkpoint-dir "$dir/local/ck" 2>&1); rc=$?
[ "$rc" -eq 2 ] && [ "$(grep -c "alexnet: error" <<<"$out")" -eq 1 ] \
  && grep -qE "^\[rank 2 node2\] alexnet: error: --checkpoint-dir $dir/local/ck is not shared: rank 2 on node2 does not see the file that rank 0 on node1 wrote there" <<<"$out" \
  && ! grep -q "^epoch 1" <<<"$out" && [ -z "$(on node1 ls -A "$dir/local/ck")" ] \
  && ok "a node-local checkpoint directory is refused in one line (exit 2), its probe removed" \
  || bad "node-local: exit $rc: $out; left: $(on node1 ls -A "$dir/local/ck")"
# ... also when the checkpoints are only on the node rank 0 ran on before and --resume auto lands
# elsewhere: the run does not start from scratch.
on node1 mkdir -p "$dir/local/ck2"
on node1 cp "$dir/shared/res/ckpt-epoch0001-step00000004.h5" "$dir/local/ck2/"
out=$(timeout 300 "$cluster" exec --dir "$dir" node2 -- mpirun -q -n 4 --host node2:2,node1:2 -x OMP_NUM_THREADS=1 \
  "$bin" "${data[@]}" --epochs 2 --checkpoint-dir "$dir/local/ck2" --resume auto 2>&1); rc=$?
[ "$rc" -eq 2 ] && grep -q "is not shared: rank 2 on node1 does not see the file that rank 0 on node2 wrote there" <<<"$out" \
  && ! grep -q "starting from scratch" <<<"$out" && ok "--resume auto with rank 0 on another node: refused, not a fresh start" \
  || bad "resume on another node: exit $rc: $out"

# Down: nothing left -- no process in the nodes, no interface or address here, the directory gone.
holders=$(python3 -c "import json; s=json.load(open('$dir/cluster.json')); print(' '.join(str(n['pid']) for n in s['nodes']), s['switch'])")
out=$("$cluster" down --dir "$dir" 2>&1) && ok "down: $out" || bad "down: $out"
left=0
for p in $holders; do  # a zombie (not yet reaped by its new parent) is gone too
  [ -e "/proc/$p" ] && [ "$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)" != Z ] && left=$((left + 1))
done
[ "$left" -eq 0 ] && [ ! -e "$dir" ] && ok "the nodes' processes are gone and the directory removed" || bad "$left holders left"
[ "$(ip -o link | awk -F': ' '{print $2}' | sort | tr '\n' ' ')" = "$links_before" ] \
  && [ "$(ip -o addr | awk '{print $2, $4}' | sort | tr '\n' ' ')" = "$addrs_before" ] \
  && ok "this machine's interfaces and addresses as before" || bad "interfaces changed"

echo "$pass passed, $fails failed"
[ "$fails" -eq 0 ]
