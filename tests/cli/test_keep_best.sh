#!/usr/bin/env bash
# --keep-best: DIR/best.h5 holds the epoch with the best metric (checked against the metrics file
# and, bitwise, against that epoch's checkpoint), survives rotation, and stays right across a stop
# and a resume, which never replace a better best with a worse one; the refusals. Faults placed
# exactly (--debug-fault), never by timing. Reads HDF5 with h5py and h5diff.
#   test_keep_best.sh PATH/TO/alexnet MPIEXEC [MPIEXEC FLAGS...]
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
same_params() { h5diff "$1" "$2" /params /params >/dev/null && h5diff "$1" "$2" /momentum /momentum >/dev/null; }
attr() { /usr/bin/python3 -c "import h5py,sys; v=h5py.File(sys.argv[1],'r').attrs[sys.argv[2]]; print(v.decode() if isinstance(v, bytes) else v)" "$1" "$2"; }

# 6 steps of 256 per epoch, 3 epochs.
base=(--model lenet --resize 0 --train-limit 1536 --test-limit 256 --batch-size 256 --lr 0.05
  --momentum 0.9 --workers 1 --progress off)
run=("${base[@]}" --epochs 3)

# best.py METRICS METRIC: the epoch whose METRIC is best (the first of equals: a later epoch must
# be strictly better), and its value.
cat >"$tmp/best.py" <<'EOF'
import json, sys
metric = sys.argv[2]
key = "loss" if metric == "train_loss" else metric
epochs = {}
for r in map(json.loads, open(sys.argv[1])):
    if r["event"] == "epoch":
        epochs[r["epoch"]] = r[key]  # a resumed run's file: the later record of an epoch
best = None
for e in sorted(epochs):
    v = epochs[e]
    if best is None or (v < best[1] if metric.endswith("loss") else v > best[1]):
        best = (e, v)
print(best[0], best[1])
EOF
# check FILE METRIC EPOCH VALUE: best.h5's attributes
check() {
  [ "$(attr "$1" best_metric)" = "$2" ] && [ "$(attr "$1" best_epoch)" = "$3" ] \
    && [ "$(attr "$1" step)" = "$(($3 * 6))" ] \
    && /usr/bin/python3 -c "import sys; sys.exit(0 if abs(float(sys.argv[1]) - float(sys.argv[2])) <= 1e-6 else 1)" \
      "$(attr "$1" best_value)" "$4"
}

# 1. Three epochs straight (every checkpoint kept): best.h5 is the best test_acc epoch, bitwise.
"$bin" "${run[@]}" --checkpoint-dir "$tmp/s" --keep-best test_acc --metrics-file "$tmp/s.json" >"$tmp/s.log" 2>&1 \
  || bad "straight run: $(cat "$tmp/s.log")"
read -r e v <<<"$(/usr/bin/python3 "$tmp/best.py" "$tmp/s.json" test_acc)"
run_s=$(attr "$tmp/s/best.h5" run_id)
check "$tmp/s/best.h5" test_acc "$e" "$v" \
  && same_params "$tmp/s/best.h5" "$tmp/s/ckpt-epoch000$e-step000000$(printf %02d $((e * 6))).h5" \
  && grep -q "^epoch $e is the best so far by test_acc" "$tmp/s.log" \
  && ok "straight: best.h5 is epoch $e (test_acc $v), the same state as its checkpoint" \
  || bad "straight: best.h5 $(attr "$tmp/s/best.h5" best_epoch)/$(attr "$tmp/s/best.h5" best_value), expected $e/$v: $(cat "$tmp/s.log")"
/usr/bin/python3 - "$tmp/s.json" <<'EOF' && ok "straight: a best record for each improvement, strictly better each time" || bad "best records: $(grep best "$tmp/s.json")"
import json, sys
b = [r for r in map(json.loads, open(sys.argv[1])) if r["event"] == "best"]
assert b and all(x["metric"] == "test_acc" for x in b), b
assert all(x["epoch"] < y["epoch"] and x["value"] < y["value"] for x, y in zip(b, b[1:])), b
EOF

# 2. The lower-is-better metric across a stop at the start of epoch 2's evaluation, with a
#    single checkpoint kept: the resumed run ends with the straight run's best by test_loss.
q=("${run[@]}" --checkpoint-dir "$tmp/q" --keep-best test_loss --keep-checkpoints 1 --metrics-file "$tmp/q.json")
"$bin" "${q[@]}" --debug-fault stop-in-eval:2 >"$tmp/q1.log" 2>&1
rc=$?
[ $rc -eq 3 ] && [ "$(attr "$tmp/q/best.h5" best_epoch)" = 1 ] \
  && ok "stopped in epoch 2's evaluation, best.h5 holds epoch 1" || bad "stop: exit $rc: $(cat "$tmp/q1.log")"
"$bin" "${q[@]}" --resume auto >"$tmp/q2.log" 2>&1 || bad "resume: $(cat "$tmp/q2.log")"
read -r e v <<<"$(/usr/bin/python3 "$tmp/best.py" "$tmp/s.json" test_loss)"
check "$tmp/q/best.h5" test_loss "$e" "$v" \
  && same_params "$tmp/q/best.h5" "$tmp/s/ckpt-epoch000$e-step000000$(printf %02d $((e * 6))).h5" \
  && grep -q "^best so far by test_loss: .* at epoch 1 ($tmp/q/best.h5)$" "$tmp/q2.log" \
  && ok "stop and resume: best.h5 is the straight run's best test_loss epoch ($e), bitwise" \
  || bad "stop and resume: best.h5 epoch $(attr "$tmp/q/best.h5" best_epoch), expected $e: $(cat "$tmp/q2.log")"
[ "$(ls "$tmp/q" | grep -c '^ckpt-')" -eq 1 ] && [ -f "$tmp/q/best.h5" ] \
  && ok "rotation keeps one checkpoint and never touches best.h5" || bad "rotation: $(ls "$tmp/q")"

# 3. Two ranks stopped in the middle of epoch 2; best.h5's value is then made unbeatable: the
#    resumed run reads it back and never replaces it.
b=("${run[@]}" --checkpoint-dir "$tmp/b" --keep-best test_acc)
"${mpi[@]}" -n 2 "$bin" "${b[@]}" --debug-fault stop-in-step:9 >"$tmp/b1.log" 2>&1
rc=$?
[ $rc -eq 3 ] && [ "$(attr "$tmp/b/best.h5" best_epoch)" = 1 ] \
  && ok "2 ranks: stopped at step 8, best.h5 holds epoch 1" || bad "2-rank stop: exit $rc: $(cat "$tmp/b1.log")"
/usr/bin/python3 -c "import h5py,sys; h5py.File(sys.argv[1],'r+').attrs['best_value'] = 0.999" "$tmp/b/best.h5"
"${mpi[@]}" -n 2 "$bin" "${b[@]}" --resume auto >"$tmp/b2.log" 2>&1 || bad "2-rank resume: $(cat "$tmp/b2.log")"
grep -q "^best so far by test_acc: 0.999 at epoch 1" "$tmp/b2.log" && ! grep -q "is the best so far" "$tmp/b2.log" \
  && check "$tmp/b/best.h5" test_acc 1 0.999 \
  && ok "a resumed run does not replace a better best with a worse one" || bad "better best: $(cat "$tmp/b2.log")"

# 4. Another run's best.h5. On a resume: refused. Under --resume auto with nothing to resume: set
#    aside (that run was killed before its first checkpoint). A new run: the start-over rules.
cp "$tmp/s/best.h5" "$tmp/b/best.h5"
out=$("${mpi[@]}" -n 2 "$bin" "${base[@]}" --epochs 4 --checkpoint-dir "$tmp/b" --keep-best test_acc --resume auto 2>&1)
rc=$?
[ $rc -eq 2 ] && [ "$(grep -c "alexnet: error:" <<<"$out")" -eq 1 ] \
  && grep -q "alexnet: error: $tmp/b/best.h5 is the best checkpoint of run $run_s, not of this run ([0-9a-f]*); move it out of $tmp/b to keep it, or delete it$" <<<"$out" \
  && ok "another run's best.h5 on a resume: refused in one line" || bad "foreign best on resume: exit $rc: $out"
mkdir "$tmp/o" && cp "$tmp/s/best.h5" "$tmp/o/"
out=$("$bin" "${base[@]}" --epochs 1 --checkpoint-dir "$tmp/o" --keep-best test_acc 2>&1)
rc=$?
[ $rc -eq 2 ] && grep -q "alexnet: error: $tmp/o holds 1 checkpoint of run $run_s (newest best.h5); continue that run with --resume auto" <<<"$out" \
  && ok "a new run over another run's best.h5: refused (--start-over rules)" || bad "new run: exit $rc: $out"
out=$("$bin" "${base[@]}" --epochs 1 --checkpoint-dir "$tmp/o" --keep-best test_acc --resume auto 2>&1)
rc=$?
[ $rc -eq 0 ] && grep -q "^$tmp/o/best.h5 was the best checkpoint of run $run_s, which left no checkpoint to resume; moved into $tmp/o/previous-$run_s$" <<<"$out" \
  && [ -f "$tmp/o/previous-$run_s/best.h5" ] && [ "$(attr "$tmp/o/best.h5" run_id)" != "$run_s" ] \
  && ok "--resume auto with only another run's best.h5: set aside, the new run keeps its own" || bad "orphan: exit $rc: $out"

# 5. Refusals.
expect_usage() {
  local want=$1
  shift
  local out rc
  out=$("$bin" "$@" 2>&1)
  rc=$?
  [ $rc -eq 2 ] && [ "$out" = "alexnet: error: $want" ] && ok "refused: $want" || bad "$*: exit $rc: $out"
}
expect_usage "--keep-best must be one of test_acc, test_loss, test_top5, train_acc, train_loss, got 'accuracy'" \
  "${base[@]}" --checkpoint-dir "$tmp/x" --keep-best accuracy
expect_usage "--keep-best needs --checkpoint-dir" "${base[@]}" --keep-best test_acc
expect_usage "--keep-best test_top5 needs at least 10 classes (top-5 accuracy is not reported below that); the data has 5" \
  "${base[@]}" --dataset synthetic --synthetic-classes 5 --checkpoint-dir "$tmp/x" --keep-best test_top5
"$bin" --checkpoint-dir x --keep-best test_acc --print-config | grep -qx "keep-best = test_acc" \
  && ok "--print-config shows keep-best" || bad "print-config: $("$bin" --print-config | grep keep-best)"

echo "$pass passed, $fails failed"
[ "$fails" -eq 0 ]
