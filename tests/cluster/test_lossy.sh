#!/usr/bin/env bash
# A slow, lossy link on a cluster of two namespace nodes (launch/cluster): node2's link gets
# 50 ms of delay each way and 1 % packet loss (distnet-wire between two TAP interfaces). A TCP
# handshake between the nodes then takes at least 100 ms; 2 nodes x 2 ranks train LeNet to the
# same weights as one process (within 1e-5, as without faults), each step waiting at least the
# delay; the wire lost about 1 % of the frames. Bad settings are refused in one line. --clear
# takes the wire out. 'launch/cluster run' with a Ctrl-C (SIGINT to its process group, as a
# terminal sends it) stops the command and takes the cluster down, wire included.
# Skips (exit 77) where namespaces cannot be made. Every wait is bounded.
#   test_lossy.sh PATH/TO/alexnet PATH/TO/distnet-wire
source "$(dirname "$0")/lib.sh"
export DISTNET_WIRE=$2
[ -x "$DISTNET_WIRE" ] || { echo "FAIL: no distnet-wire at $DISTNET_WIRE"; exit 1; }
if [ ! -c /dev/net/tun ]; then echo "SKIP: no /dev/net/tun (TAP interfaces) on this machine"; exit 77; fi

out=$("$cluster" up --dir "$dir" --nodes 2 --slots 2 2>&1) && ok "up: $out" || { bad "up: $out"; exit 1; }
on() { local node=$1; shift; "$cluster" exec --dir "$dir" "$node" -- "$@"; }
sw() { nsenter -t "$(python3 -c "import json; print(json.load(open('$dir/cluster.json'))['switch'])")" -n "$@"; }
running() { [ -e "/proc/$1" ] && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }  # a zombie is gone
wire_pid() { python3 -c "import json; w=json.load(open('$dir/cluster.json'))['nodes'][1].get('wire'); print(w['pid'] if w else '')"; }

# Refusals: one line, exit 2, nothing changed.
for bad_args in "--loss 100%" "--loss -1" "--delay 5s" "--delay 70000ms" "--rate 5"; do
  out=$("$cluster" shape --dir "$dir" node2 $bad_args 2>&1); rc=$?
  [ "$rc" -eq 2 ] && [ "$(wc -l <<<"$out")" -eq 1 ] && grep -q "^cluster: error: --" <<<"$out" \
    && ok "shape $bad_args refused: $out" || bad "shape $bad_args: exit $rc: $out"
done
out=$(DISTNET_WIRE=/nonexistent/distnet-wire "$cluster" shape --dir "$dir" node2 --delay 5ms 2>&1); rc=$?
[ "$rc" -eq 1 ] && grep -q "need distnet-wire, not found at /nonexistent/distnet-wire" <<<"$out" && [ -z "$(wire_pid)" ] \
  && ok "no distnet-wire: refused in one line, the link as it was" || bad "no wire: exit $rc: $out"

out=$("$cluster" shape --dir "$dir" node2 --delay 50ms --loss 1% 2>&1) \
  && [ "$out" = "cluster: node2's link: no rate limit, delay 50ms, loss 1%" ] && ok "$out" || bad "shape: $out"
[ "$(sw ip -o link show p-node2 | grep -o 'master [^ ]*')" = "master b-node2" ] \
  && [ "$(sw ip -o link show wb-node2 | grep -o 'master [^ ]*')" = "master br0" ] \
  && ok "node2's port goes through the wire (p-node2 on b-node2, wb-node2 on br0)" || bad "links: $(sw ip -o link)"

# A TCP handshake is one round trip: node1 -> node2 and back crosses node2's link twice.
cat >"$dir/shared/connect.py" <<'EOF'
import socket, sys, time
role, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
if role == "server":
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("198.18.0.2", port))
    s.listen(count)
    s.settimeout(60)
    for _ in range(count):
        s.accept()[0].close()
else:
    times = []
    for _ in range(count):
        t = time.monotonic()
        socket.create_connection(("198.18.0.2", port), timeout=30).close()
        times.append(time.monotonic() - t)
    print("%.1f" % (1e3 * min(times)))
EOF
on node2 timeout 90 python3 "$dir/shared/connect.py" server 5601 5 &
server=$!
for ((i = 0; i < 100; i++)); do on node2 sh -c 'ss -ltn | grep -q ":5601 "' && break; sleep 0.1; done
rtt=$(on node1 timeout 90 python3 "$dir/shared/connect.py" client 5601 5 2>&1)
wait "$server"
python3 -c "import sys; sys.exit(0 if 100.0 <= float('$rtt') else 1)" 2>/dev/null \
  && ok "a TCP handshake node1 -> node2 takes ${rtt} ms (at least 2 x 50 ms)" || bad "handshake: $rtt"

# LeNet on 2 nodes x 2 ranks through the lossy link, against one process.
data=(--model lenet --dataset synthetic --synthetic-shape 1x28x28 --synthetic-train-size 256
  --synthetic-test-size 64 --batch-size 64 --lr 0.02 --momentum 0.9 --weight-decay 1e-4 --progress off)
final=ckpt-epoch0002-step00000008.h5
OMP_NUM_THREADS=1 "$bin" "${data[@]}" --epochs 2 --checkpoint-dir "$tmp/one" >"$tmp/one.log" 2>&1 \
  || bad "one process: $(tail -3 "$tmp/one.log")"
out=$(timeout 600 "$cluster" exec --dir "$dir" node1 -- mpirun -q -n 4 --hostfile "$dir/hostfile" \
  -x OMP_NUM_THREADS=1 "$bin" "${data[@]}" --epochs 2 --checkpoint-dir "$dir/shared/lossy" 2>&1); rc=$?
[ "$rc" -eq 0 ] && grep -q "ctx rank 3: host node2" <<<"$out" && ok "2 nodes x 2 ranks trained through the lossy link" \
  || bad "lossy run: exit $rc: $out"
if d=$(/usr/bin/python3 "$here/checkpoint/compare_checkpoints.py" "$tmp/one/$final" "$dir/shared/lossy/$final" 1e-5); then
  ok "... and ended where one process does ($d)"
else bad "lossy link vs one process: $d"; fi
# Each of an epoch's 4 steps all-reduces across the link at least once: at least 4 x 50 ms of
# waiting in collectives on every rank (a lower bound, true however loaded the machine is).
waits=$(grep -o "waiting in collectives [0-9.]*-" <<<"$out" | grep -o "[0-9.]*" | tr '\n' ' ')
python3 -c "import sys; w=[float(x) for x in '$waits'.split()]; sys.exit(0 if len(w) == 2 and min(w) >= 0.2 else 1)" \
  && ok "every rank waited at least 4 x 50 ms per epoch in collectives (least per epoch: $waits s)" \
  || bad "waiting in collectives: '$waits'"
counters=$("$cluster" status --dir "$dir" | grep -o "frames: [0-9]* forwarded, [0-9]* lost")
python3 - "$counters" <<'EOF' && ok "the wire: $counters" || bad "wire counters: '$counters'"
import re, sys
f, l = map(int, re.findall(r"\d+", sys.argv[1]))
share = l / float(f + l)
# Binomial: with n >= 2000 frames at 1 %, 0.3 % and 2 % are more than 4 standard deviations away.
sys.exit(0 if f + l >= 2000 and 0.003 <= share <= 0.02 else 1)
EOF

# --clear: the wire taken out, the port back on the bridge.
pid=$(wire_pid)
out=$("$cluster" shape --dir "$dir" node2 --clear 2>&1)
[ "$(sw ip -o link show p-node2 | grep -o 'master [^ ]*')" = "master br0" ] && ! sw ip link show b-node2 >/dev/null 2>&1 \
  && ! sw ip link show wa-node2 >/dev/null 2>&1 && ! running "$pid" && [ -z "$(wire_pid)" ] \
  && ok "--clear: the wire (pid $pid) stopped, its TAPs gone, p-node2 back on br0" || bad "clear: $out; $(sw ip -o link)"
out=$(timeout 60 "$cluster" exec --dir "$dir" node1 -- mpirun -q -n 2 --host node1:1,node2:1 hostname 2>&1 | sort | tr '\n' ' ')
[ "$out" = "node1 node2 " ] && ok "the nodes reach each other after --clear" || bad "after clear: $out"
out=$("$cluster" down --dir "$dir" 2>&1) || bad "down: $out"

# launch/cluster run, interrupted: SIGINT to its process group, as a Ctrl-C at a terminal.
marker=$tmp/run-dir
setsid "$cluster" run --nodes 2 --delay 5ms --loss 0.1% -- sh -c "echo \$DISTNET_CLUSTER >'$marker'; exec sleep 120" \
  >"$tmp/run.log" 2>&1 &
runner=$!
for ((i = 0; i < 600; i++)); do [ -s "$marker" ] && break; sleep 0.1; done
rdir=$(cat "$marker" 2>/dev/null)
holders=$(python3 -c "import json; s=json.load(open('$rdir/cluster.json')); print(' '.join(str(n['pid']) for n in s['nodes']), s['switch'], ' '.join(str(n['wire']['pid']) for n in s['nodes']))" 2>/dev/null)
kill -INT -- "-$runner"
for ((i = 0; i < 600; i++)); do kill -0 "$runner" 2>/dev/null || break; sleep 0.1; done
wait "$runner"
rc=$?
left=0
for p in $holders; do running "$p" && left=$((left + 1)); done
[ -n "$rdir" ] && [ "$(wc -w <<<"$holders")" -eq 5 ] && [ "$rc" -eq 130 ] && [ "$left" -eq 0 ] && [ ! -e "$rdir" ] \
  && ok "run, Ctrl-C: exit 130, the nodes, switch and wires (${holders}) gone, $rdir removed" \
  || bad "run interrupted: exit $rc, dir '$rdir', $left of '$holders' left: $(cat "$tmp/run.log")"

echo "$pass passed, $fails failed"
[ "$fails" -eq 0 ]
