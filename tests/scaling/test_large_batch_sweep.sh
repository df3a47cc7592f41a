#!/usr/bin/env bash
# launch/scaling-study tta --global-batch: the large-batch sweep on 1 and 2 CPU ranks with LeNet on
# a small synthetic set. Each run gets the recipe's optimizer, its learning rate scaled by the rule
# and the accumulation that makes up the global batch; 1 rank accumulating 2 micro-batches trains
# as 2 ranks do; the CSV, the summary and the plot follow from the runs; a rerun keeps finished
# runs; bad arguments are refused in one line.
#   test_large_batch_sweep.sh PATH/TO/alexnet
set -u
bin=$1
study=$(cd "$(dirname "$0")/../.." && pwd)/launch/scaling-study
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0
fails=0
ok() { echo "ok: $1"; pass=$((pass + 1)); }
bad() { echo "FAIL: $1"; fails=$((fails + 1)); }

data=(--model lenet --resize 0 --dataset synthetic --synthetic-train-size 512 --synthetic-test-size 128
  --epochs 2 --weight-decay 1e-4)
sweep=(tta --alexnet "$bin" --ranks 1,2 --global-batch 64,128 --micro-batch 32 --target 0.2
  --recipe sgd:0.05:linear,lars:1:sqrt,adamw:0.001:none --warmup-epochs 0.5 --threads-per-rank 1 --out "$tmp/s")
"$study" "${sweep[@]}" -- "${data[@]}" >"$tmp/sweep.log" 2>&1 && ok "sweep runs" \
  || bad "sweep failed: $(tail -5 "$tmp/sweep.log")"
csv=$tmp/s/large_batch.csv
[ "$(head -1 "$csv")" = "recipe,global_batch,ranks,micro_batch,accumulate,lr,steps_per_epoch,epochs,final_test_acc,best_test_acc,final_loss,target,reached,epochs_to_target,train_s_to_target,train_s,drop_vs_base" ] \
  && ok "CSV columns" || bad "CSV header: $(head -1 "$csv")"
# recipe, batch, ranks, micro, K, lr, steps per epoch: K = B / (ranks x 32); linear and sqrt rules.
rows=$(tail -n +2 "$csv" | cut -d, -f1-7 | tr '\n' ' ')
[ "$rows" = "sgd,64,1,32,2,0.05,8 lars,64,1,32,2,1,8 adamw-none,64,1,32,2,0.001,8 sgd,128,1,32,4,0.1,4 lars,128,1,32,4,1.41421,4 adamw-none,128,1,32,4,0.001,4 sgd,64,2,32,1,0.05,8 lars,64,2,32,1,1,8 adamw-none,64,2,32,1,0.001,8 sgd,128,2,32,2,0.1,4 lars,128,2,32,2,1.41421,4 adamw-none,128,2,32,2,0.001,4 " ] \
  && ok "one run per recipe, batch and rank count, with its accumulation and scaled lr (a rule not the usual one labelled)" || bad "rows: $rows"
# What each run was given, from its own metrics (the effective configuration it printed).
python3 - "$tmp/s/runs" <<'EOF' && ok "each run trained with the recipe's optimizer, lr, batch, K, poly schedule and warm-up" || bad "run configs"
import json, os, sys
runs = sys.argv[1]
want = {"sgd-b64-n1": ("sgd", "0.05", "64", "2"), "lars-b128-n1": ("lars", "1.4142136", "128", "4"),
        "sgd-b128-n2": ("sgd", "0.1", "128", "2"), "lars-b64-n2": ("lars", "1", "64", "1"),
        "adamw-none-b128-n2": ("adamw", "0.001", "128", "2")}
for name, (opt, lr, batch, k) in want.items():
    ev = [json.loads(l) for l in open(os.path.join(runs, name + ".jsonl")) if l.strip()]
    run = next(e for e in ev if e["event"] == "run")
    cfg = dict(l.split(" = ", 1) for l in run["config"].splitlines() if " = " in l)
    got = (cfg.get("optimizer"), cfg.get("lr"), cfg.get("batch-size"), cfg.get("accumulate"))
    assert got == (opt, lr, batch, k), (name, got)
    assert cfg.get("lr-schedule") == "poly" and cfg.get("warmup-epochs") == "0.5", (name, cfg)
    assert run["ranks"] == int(name[-1]), name
    assert len([e for e in ev if e["event"] == "epoch"]) == 2, name
EOF
# Accumulation stands in for ranks: 1 rank x K=2 and 2 ranks x K=1 take the same steps.
python3 - "$tmp/s/runs" <<'EOF' && ok "1 rank accumulating 2 micro-batches trains as 2 ranks, for each optimizer (loss within 1e-5)" || bad "accumulation vs ranks"
import json, os, sys
def losses(name):
    ev = [json.loads(l) for l in open(os.path.join(sys.argv[1], name + ".jsonl")) if l.strip()]
    return [(e["loss"], e["test_acc"]) for e in ev if e["event"] == "epoch"]
for a, b in (("sgd-b128-n1", "sgd-b128-n2"), ("lars-b128-n1", "lars-b128-n2"), ("adamw-none-b128-n1", "adamw-none-b128-n2")):
    la, lb = losses(a), losses(b)
    assert len(la) == len(lb) == 2
    for (x, ax), (y, ay) in zip(la, lb):
        assert abs(x - y) <= 1e-5 * max(1.0, abs(x)), (a, b, la, lb)
        assert ax == ay, (a, b, la, lb)
EOF
# Derived columns from the runs: drop against the same recipe at batch 64, time to the target.
python3 - "$csv" "$tmp/s/runs" <<'EOF' && ok "final/best accuracy, drop and epochs to target follow from the runs" || bad "derived columns: $(cat "$csv")"
import csv, json, os, sys
rows = list(csv.DictReader(open(sys.argv[1])))
for r in rows:
    ev = [json.loads(l) for l in open(os.path.join(sys.argv[2], "%s-b%s-n%s.jsonl" % (r["recipe"], r["global_batch"], r["ranks"]))) if l.strip()]
    ep = [e for e in ev if e["event"] == "epoch"]
    assert float(r["final_test_acc"]) == ep[-1]["test_acc"]
    assert float(r["best_test_acc"]) == max(e["test_acc"] for e in ep)
    first = next((e["epoch"] for e in ep if e["test_acc"] >= 0.2), "")
    assert r["epochs_to_target"] == str(first) and r["reached"] == ("1" if first else "0"), r
    base = next(b for b in rows if b["recipe"] == r["recipe"] and b["ranks"] == r["ranks"] and b["global_batch"] == "64")
    assert abs(float(r["drop_vs_base"]) - 100 * (float(base["final_test_acc"]) - float(r["final_test_acc"]))) < 0.006, r
EOF
[ "$(grep -cE "^  (sgd|lars|adamw-none) on [12] ranks?: (within 1 point of batch 64 up to batch 128|loses more than 1 point against batch 64 first at batch 128)" "$tmp/sweep.log")" -eq 6 ] \
  && ok "summary: where each recipe loses more than 1 point" || bad "summary: $(tail -6 "$tmp/sweep.log")"
[ "$(head -c 8 "$tmp/s/large_batch.png" | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a" ] \
  && grep -q "<svg" "$tmp/s/large_batch.svg" && ok "plot (PNG and SVG)" || bad "no plot"
[ -z "$(find "$tmp/s/runs" -name '*.ckpt')" ] && ok "the runs' checkpoints are removed once done" \
  || bad "left: $(find "$tmp/s/runs" -name '*.ckpt')"

# A rerun keeps what finished and writes the same table; a changed run is run again.
cp "$csv" "$tmp/first.csv"
rm "$tmp/s/runs/lars-b128-n2.jsonl"
"$study" "${sweep[@]}" -- "${data[@]}" >"$tmp/again.log" 2>&1
[ "$(grep -c "done before, kept" "$tmp/again.log")" -eq 11 ] && [ "$(grep -c "scaling-study: .*alexnet" "$tmp/again.log")" -eq 1 ] \
  && cmp -s <(cut -d, -f1-14 "$csv") <(cut -d, -f1-14 "$tmp/first.csv") \
  && ok "rerun: 11 finished runs kept, the missing one run again, the same table" \
  || bad "rerun: $(grep -c "done before" "$tmp/again.log") kept; $(diff "$csv" "$tmp/first.csv")"

# Refusals: one line, exit 2, nothing run.
refuse() {  # expected-message args...
  local want=$1
  shift
  out=$("$study" tta --alexnet "$bin" --target 0.5 --out "$tmp/r" "$@" 2>&1)
  rc=$?
  [ "$rc" -eq 2 ] && [ "$(wc -l <<<"$out")" -eq 1 ] && grep -qF "scaling-study: error: $want" <<<"$out" \
    && [ ! -e "$tmp/r/runs" ] && ok "refused: $*" || bad "$*: exit $rc: $out"
}
refuse "--global-batch 100 is not a multiple of 2 ranks x --micro-batch 32" --ranks 2 --global-batch 64,100 --micro-batch 32 -- "${data[@]}"
refuse "--recipe: 'momentum' is not NAME[:LR[:linear|sqrt|none]]" --global-batch 64 --recipe sgd,momentum -- "${data[@]}"
refuse "--recipe must name each optimizer and rule once, got 'lars:1,lars:2'" --global-batch 64 --recipe lars:1,lars:2
refuse "--recipe: the scaling rule in 'sgd:0.1:cubic' must be linear, sqrt or none" --global-batch 64 --recipe sgd:0.1:cubic
refuse "--recipe: the learning rate in 'lars:-1' must be positive" --global-batch 64 --recipe lars:-1
refuse "--lr is set by the sweep for each run; leave it out after --" --global-batch 64 -- --lr 0.1
refuse "--accumulate is set by the sweep for each run; leave it out after --" --global-batch 64 -- --accumulate=2
refuse "--recipe belongs to a batch sweep: give --global-batch too" --recipe sgd

echo "$pass passed, $fails failed"
[ "$fails" -eq 0 ]
