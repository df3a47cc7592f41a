#!/usr/bin/env bash
# --tensorboard: event files read back with TensorBoard's own loader (EventAccumulator) -- the
# tags, the steps, the values (the same as the metrics file's), one continuous curve across a
# stop and a resume on 2 ranks and across a killed run whose later steps were already logged --
# and the one-line error for a directory that cannot be written. Faults placed exactly
# (--debug-fault), never by timing.
#   test_tensorboard.sh PATH/TO/alexnet PYTHON MPIEXEC [MPIEXEC FLAGS...]
# Exit 77 (skipped) when PYTHON cannot import tensorboard.
set -u
bin=$1
py=$2
shift 2
mpi=("$@")
if ! out=$("$py" -c "from tensorboard.backend.event_processing.event_accumulator import EventAccumulator" 2>&1); then
  echo "skipped: $py cannot import TensorBoard's EventAccumulator: $(tail -1 <<<"$out")"
  exit 77
fi
pass=0
fails=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ok() { echo "ok: $1"; pass=$((pass + 1)); }
bad() { echo "FAIL: $1"; fails=$((fails + 1)); }

# 6 steps of 256 per epoch, 2 epochs; a TensorBoard point every 2 steps.
base=(--model lenet --resize 0 --test-limit 256 --batch-size 256 --lr 0.05 --momentum 0.9 --workers 1
  --progress off)
run=("${base[@]}" --train-limit 1536 --epochs 2 --tensorboard-interval 2)

# check.py DIR METRICS [REFERENCE_DIR TOLERANCE]: TensorBoard's loader over DIR (all its files, as
# `tensorboard --logdir` reads them): every tag has each step once, in order; the train/ points at
# 2, 4, ..., 12 and the epoch/ ones at 6 and 12; the values are the metrics file's; with a
# reference, the loss, learning rate and gradient norm are the reference run's (within TOLERANCE,
# relative; 0: equal as float32).
cat >"$tmp/check.py" <<'EOF'
import json, math, sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

def load(d):
    ea = EventAccumulator(d, size_guidance={"scalars": 0})
    ea.Reload()
    return {t: [(e.step, e.value, e.wall_time) for e in ea.Scalars(t)] for t in ea.Tags()["scalars"]}

d, metrics = sys.argv[1], sys.argv[2]
s = load(d)
train = ["train/loss", "train/learning_rate", "train/images_per_sec", "train/data_wait_ms", "train/grad_norm"]
epoch = ["epoch/train_loss", "epoch/train_acc", "epoch/test_loss", "epoch/test_acc", "epoch/test_top5"]
assert sorted(s) == sorted(train + epoch), sorted(s)
for t, points in s.items():
    steps = [p[0] for p in points]
    assert steps == sorted(set(steps)), (t, steps)  # each step once, increasing
    want = [6, 12] if t.startswith("epoch/") else [2, 4, 6, 8, 10, 12]
    assert steps == want, (t, steps)
    for step, v, wall in points:
        assert math.isfinite(v) and 1.7e9 < wall < 4.2e9, (t, step, v, wall)
assert all(v > 0 for _, v, _ in s["train/grad_norm"] + s["train/images_per_sec"])
# The metrics file's figures, by step (a resumed run's file holds both processes' records; for a
# step logged twice, the later process's).
records = [json.loads(l) for l in open(metrics)]
by_step = {r["step"]: r for r in records if r["event"] == "step"}
by_epoch = {r["step"]: r for r in records if r["event"] == "epoch"}
assert sorted(by_step) == [2, 4, 6, 8, 10, 12] and sorted(by_epoch) == [6, 12], (by_step, by_epoch)
def near(a, b, rel):
    return abs(a - b) <= rel * max(abs(a), abs(b), 1e-30)
for tag, key in [("train/loss", "loss"), ("train/learning_rate", "lr"),
                 ("train/images_per_sec", "images_per_s"), ("train/data_wait_ms", "data_wait_ms"),
                 ("train/grad_norm", "grad_norm")]:
    for step, v, _ in s[tag]:
        want = by_step[step][key]  # JSON: 6 decimals (3 for images/s, 4 for ms)
        assert abs(v - want) <= max(2e-6 * abs(want), 1e-3 if key != "loss" else 1e-6), (tag, step, v, want)
for tag, key in [("epoch/train_loss", "loss"), ("epoch/train_acc", "train_acc"),
                 ("epoch/test_loss", "test_loss"), ("epoch/test_acc", "test_acc"),
                 ("epoch/test_top5", "test_top5")]:
    for step, v, _ in s[tag]:
        assert abs(v - by_epoch[step][key]) <= 1e-6, (tag, step, v, by_epoch[step][key])
if len(sys.argv) > 3:
    ref, rel = load(sys.argv[3]), float(sys.argv[4])
    for tag in ["train/loss", "train/learning_rate", "train/grad_norm"] + epoch:
        got, want = [p[:2] for p in s[tag]], [p[:2] for p in ref[tag]]
        assert [p[0] for p in got] == [p[0] for p in want], tag
        for (step, a), (_, b) in zip(got, want):
            assert (a == b) if rel == 0 else near(a, b, rel), (tag, step, a, b)
EOF
# raw.py FILE: the steps of the train/loss points in one event file, read record by record.
cat >"$tmp/raw.py" <<'EOF'
import sys
from tensorboard.backend.event_processing import event_file_loader
steps = [e.step for e in event_file_loader.EventFileLoader(sys.argv[1]).Load()
         if e.HasField("summary") and e.summary.value[0].tag == "train/loss"]
print(" ".join(map(str, steps)))
EOF

# 1. Straight, one rank: tags, steps, the metrics file's values.
"$bin" "${run[@]}" --tensorboard "$tmp/tb/straight" --metrics-file "$tmp/straight.json" >"$tmp/straight.log" 2>&1 \
  || bad "straight run: $(cat "$tmp/straight.log")"
grep -q "^tensorboard: $tmp/tb/straight/events.out.tfevents.[0-9]*\..*\.[0-9a-f]\{16\} (tensorboard --logdir $tmp/tb/straight)$" "$tmp/straight.log" \
  && ok "the run names its event file" || bad "no event file line: $(cat "$tmp/straight.log")"
err=$("$py" "$tmp/check.py" "$tmp/tb/straight" "$tmp/straight.json" 2>&1) \
  && ok "straight: EventAccumulator reads every tag at its steps, with the metrics file's values" \
  || bad "straight: $err"

# 2. Two ranks, stopped in the middle of step 9 (step 8 checkpointed), resumed: one curve, each
#    step once, the metrics file's values, and the one-rank run's figures up to rounding.
"${mpi[@]}" -n 2 "$bin" "${run[@]}" --checkpoint-dir "$tmp/ck-stop" --tensorboard "$tmp/tb/stop" \
  --metrics-file "$tmp/stop.json" --debug-fault stop-in-step:9 >"$tmp/stop1.log" 2>&1
rc=$?
[ $rc -eq 3 ] && grep -q "stopped on request at step 8" "$tmp/stop1.log" \
  && ok "2 ranks: stopped at step 8" || bad "stop: exit $rc: $(cat "$tmp/stop1.log")"
"${mpi[@]}" -n 2 "$bin" "${run[@]}" --checkpoint-dir "$tmp/ck-stop" --tensorboard "$tmp/tb/stop" \
  --metrics-file "$tmp/stop.json" --resume auto >"$tmp/stop2.log" 2>&1 || bad "resume: $(cat "$tmp/stop2.log")"
[ "$(ls "$tmp/tb/stop" | wc -l)" -eq 2 ] && ! grep -q "warning" "$tmp/stop2.log" \
  && ok "the resumed process writes its own file beside the first, without a warning" \
  || bad "event files after the resume: $(ls "$tmp/tb/stop"); $(cat "$tmp/stop2.log")"
err=$("$py" "$tmp/check.py" "$tmp/tb/stop" "$tmp/stop.json" "$tmp/tb/straight" 1e-3 2>&1) \
  && ok "stop and resume on 2 ranks: one continuous curve, each step once, the 1-rank figures" \
  || bad "stop and resume: $err"

# 2b. The gradient norm of a split model (--model-parallel 2 on 4 ranks: two groups of two, the
#     dense layers' pieces counted once): the one-rank run's, up to rounding.
"${mpi[@]}" -n 4 "$bin" "${base[@]}" --train-limit 1536 --epochs 1 --tensorboard-interval 2 --model-parallel 2 --tensorboard "$tmp/tb/grid" \
  --metrics-file "$tmp/grid.json" >"$tmp/grid.log" 2>&1 || bad "grid run: $(cat "$tmp/grid.log")"
"$py" - "$tmp/grid.json" "$tmp/straight.json" <<'EOF2' && ok "a split model's gradient norm and loss: the one-rank run's" || bad "grid: $(grep '"step"' "$tmp/grid.json")"
import json, sys
a, b = ({r["step"]: r for r in map(json.loads, open(f)) if r["event"] == "step"} for f in sys.argv[1:])
assert sorted(a) == [2, 4, 6], a
for s in a:
    for k in ("grad_norm", "loss"):
        assert abs(a[s][k] - b[s][k]) <= 1e-4 * abs(b[s][k]), (s, k, a[s][k], b[s][k])
EOF2

# 3. One rank killed by an error in step 11 (checkpoint at step 8; points 10 already logged),
#    resumed: the loader drops the orphaned point 10 at the new file's session start, and every
#    figure is the straight run's exactly (the CPU resume is bitwise).
"$bin" "${run[@]}" --checkpoint-dir "$tmp/ck-kill" --checkpoint-every 4steps --tensorboard "$tmp/tb/kill" \
  --metrics-file "$tmp/kill.json" --debug-fault error-in-step:0:11 >"$tmp/kill1.log" 2>&1
rc=$?
first=$(ls "$tmp/tb/kill" | head -1)
[ $rc -eq 1 ] && [ "$("$py" "$tmp/raw.py" "$tmp/tb/kill/$first")" = "2 4 6 8 10" ] \
  && ok "killed in step 11: its file holds point 10, beyond the checkpoint of step 8" \
  || bad "kill: exit $rc, points $("$py" "$tmp/raw.py" "$tmp/tb/kill/$first" 2>&1): $(cat "$tmp/kill1.log")"
"$bin" "${run[@]}" --checkpoint-dir "$tmp/ck-kill" --checkpoint-every 4steps --tensorboard "$tmp/tb/kill" \
  --metrics-file "$tmp/kill.json" --resume auto >"$tmp/kill2.log" 2>&1 || bad "resume after kill: $(cat "$tmp/kill2.log")"
# The metrics file holds point 10 twice too (appended to, never cut); the check takes the later.
err=$("$py" "$tmp/check.py" "$tmp/tb/kill" "$tmp/kill.json" "$tmp/tb/straight" 0 2>&1) \
  && ok "kill and resume: the orphaned point is dropped, each step once, the straight run's figures" \
  || bad "kill and resume: $err"

# 4. Errors, before any training, on every rank.
out=$("${mpi[@]}" -n 2 "$bin" "${run[@]}" --tensorboard /dev/null/tb 2>&1)
rc=$?
[ $rc -eq 1 ] && [ "$(grep -c "alexnet: error:" <<<"$out")" -eq 1 ] \
  && grep -q "alexnet: error: /dev/null/tb: cannot create the TensorBoard directory: Not a directory$" <<<"$out" \
  && ! grep -q "^epoch" <<<"$out" \
  && ok "an unwritable directory: one line naming it, exit 1, nothing trained" || bad "unwritable: exit $rc: $out"
if [ "$(id -u)" -ne 0 ]; then
  mkdir "$tmp/ro" && chmod 555 "$tmp/ro"
  out=$("$bin" "${run[@]}" --tensorboard "$tmp/ro" 2>&1)
  rc=$?
  [ $rc -eq 1 ] && grep -q "alexnet: error: $tmp/ro: cannot write TensorBoard event files there: Permission denied" <<<"$out" \
    && ok "a read-only directory: one line naming it" || bad "read-only: exit $rc: $out"
fi
out=$("$bin" "${base[@]}" --tensorboard-interval 0 2>&1)
[ $? -eq 2 ] && [ "$out" = "alexnet: error: --tensorboard-interval must be at least 1, got 0" ] \
  && ok "--tensorboard-interval 0 is a usage error" || bad "interval 0: $out"
"$bin" --tensorboard runs/x --print-config | grep -qx "tensorboard = runs/x" \
  && "$bin" --print-config | grep -qx "tensorboard-interval = 10" \
  && ok "--print-config shows both options" || bad "print-config: $("$bin" --print-config | grep tensorboard)"
# A second run into a directory that holds another run's file: a warning, and it trains.
"$bin" "${base[@]}" --epochs 1 --train-limit 512 --tensorboard "$tmp/tb/straight" >"$tmp/other.log" 2>&1 \
  && grep -q "^alexnet: warning: --tensorboard $tmp/tb/straight already holds events.out.tfevents.*, another run's event file" "$tmp/other.log" \
  && ok "another run's directory: a warning" || bad "other run: $(cat "$tmp/other.log")"

# 5. A full disk: DIR on a tmpfs with one free page (in a mount namespace of this test), a point
#    every step. The write that does not fit stops the run in one line, exit 1.
if unshare -m true 2>/dev/null && command -v mount >/dev/null; then
  mkdir -p "$tmp/full"
  unshare -m bash -c '
    mount -t tmpfs -o size=64k tmpfs "$1/full" || exit 90
    head -c 1048576 /dev/zero >"$1/full/filler" 2>/dev/null
    truncate -s -4096 "$1/full/filler"
    "$2" "${@:3}" --tensorboard "$1/full/tb" >"$1/full.log" 2>&1
    echo "rc $?" >"$1/full.result"
    umount "$1/full"' _ "$tmp" "$bin" "${base[@]}" --train-limit 6144 --epochs 2 --tensorboard-interval 1
  log=$tmp/full.log
  [ "$(cat "$tmp/full.result" 2>/dev/null)" = "rc 1" ] && [ "$(grep -c "alexnet: error:" "$log")" -eq 1 ] \
    && grep -q "alexnet: error: $tmp/full/tb/events.out.tfevents.*: cannot write the TensorBoard event file: No space left on device; the run stops at step [0-9]*" "$log" \
    && ok "a full disk: one line naming the event file, the run stops, exit 1" \
    || bad "full disk: $(cat "$tmp/full.result" 2>/dev/null): $(cat "$log")"
else
  echo "skip: full disk: cannot make a mount namespace here (unshare -m) or mount a tmpfs (mount)"
fi

echo "$pass passed, $fails failed"
[ "$fails" -eq 0 ]
