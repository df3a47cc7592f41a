#!/usr/bin/env bash
# bench/pytorch_gpu_alexnet.py smoke-tested on the CPU with tiny settings: compute, e2e (on a tiny
# generated IDX set, gzipped and plain, and on the real Fashion-MNIST when it is installed),
# ratio against distnet's JSON lines, and the one-line errors. Exit 77 (skip) without torch.
#   test_pytorch_gpu_script.sh [PATH/TO/alexnet]   (optional: also compare a real distnet run)
set -u
here=$(cd "$(dirname "$0")" && pwd)
script=$here/../../bench/pytorch_gpu_alexnet.py
bin=${1:-}
if ! python3 -c 'import torch' >/dev/null 2>&1; then
  echo "SKIP: python3 cannot import torch (pip install torch --index-url https://download.pytorch.org/whl/cpu)"
  exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0
fails=0
ok() { echo "ok: $1"; pass=$((pass + 1)); }
bad() { echo "FAIL: $1"; fails=$((fails + 1)); }
py() { python3 "$script" "$@"; }

# compute: one human line per (batch, format), one JSON line per result, one best per batch.
py compute --device cpu --batch 2,3 --warmup 1 --steps 1 --repeats 1 --threads 2 >"$tmp/c.log" 2>"$tmp/c.err"
rc=$?
[ "$rc" -eq 0 ] && ok "compute runs" || bad "compute exited $rc: $(tail -5 "$tmp/c.err")"
[ ! -s "$tmp/c.err" ] && ok "compute: nothing on stderr" || bad "compute stderr: $(head -5 "$tmp/c.err")"
grep -q "^note: --device cpu only smoke-tests this script" "$tmp/c.log" && ok "CPU note" || bad "no CPU note"
grep -q "46,764,746 parameters" "$tmp/c.log" && ok "parameter count as distnet's --print-shapes" \
  || bad "parameters: $(grep network "$tmp/c.log")"
n=$(grep -cE "^compute batch [23] (contiguous|channels_last) +fp32: [0-9.]+ images/s" "$tmp/c.log")
[ "$n" -eq 4 ] && ok "compute: 4 result lines" || bad "compute: $n result lines: $(cat "$tmp/c.log")"
[ "$(grep -c '^best batch ' "$tmp/c.log")" -eq 2 ] && ok "compute: a best line per batch" || bad "best lines"
python3 - "$tmp/c.log" <<'EOF' && ok "compute: JSON lines" || bad "compute JSON: $(grep '^{' "$tmp/c.log")"
import json, sys
rs = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
assert len(rs) == 4, rs
for r in rs:
    assert r["impl"] == "pytorch" and r["mode"] == "compute" and r["device"] == "cpu", r
    assert r["images_per_s"] > 0 and len(r["images_per_s_runs"]) == 1, r
assert sorted((r["batch"], r["memory_format"]) for r in rs) == [
    (2, "channels_last"), (2, "contiguous"), (3, "channels_last"), (3, "contiguous")]
assert sum(r["best"] for r in rs) == 2
EOF

# ratio: a distnet benchmark record (the fields src/train/report.cpp writes) against the above.
cat >"$tmp/distnet.jsonl" <<'EOF'
{"event":"run","version":"0.1.0","ranks":1,"ctx":[{"rank":0,"host":"h","local_rank":0,"device":"cuda:0 (test)"}],"parameters":46764746,"config":"model = alexnet\nbatch-size = 2\n"}
{"event":"benchmark","ranks":1,"global_batch":2,"steps":1,"images_per_s":8.000,"images_per_s_per_rank":8.000,"step_ms":250.0,"per_rank_batch":2.0000,"compute_ms":250.0,"comm_ms":0.0,"data_ms":0.0,"layers":[]}
EOF
best2=$(python3 -c 'import json,sys; print(max(r["images_per_s"] for r in map(json.loads, (l for l in open(sys.argv[1]) if l.startswith("{"))) if r["batch"] == 2))' "$tmp/c.log")
out=$(py ratio --distnet "$tmp/distnet.jsonl" --pytorch "$tmp/c.log" 2>&1)
rc=$?
want=$(python3 -c "print(f'{8.0 / $best2:.3f}')")
[ "$rc" -eq 0 ] && grep -q "^ratio compute batch 2: distnet 8.0 / pytorch .* = $want$" <<<"$out" \
  && grep -q "^ratio compute batch 3: no distnet figure$" <<<"$out" && ok "ratio from saved output" \
  || bad "ratio exited $rc: $out (expected ratio $want)"
out=$(py compute --device cpu --batch 2 --formats contiguous --warmup 0 --steps 1 --repeats 1 \
  --compare "$tmp/distnet.jsonl" 2>&1)
rc=$?
[ "$rc" -eq 0 ] && grep -qE '^ratio compute batch 2: distnet 8.0 / pytorch [0-9.]+ \(contiguous\) = [0-9.]+$' <<<"$out" \
  && grep -q '"impl": "ratio"' <<<"$out" && ok "compute --compare" || bad "compute --compare exited $rc: $out"
if [ -n "$bin" ] && [ -x "$bin" ]; then
  "$bin" --benchmark --device cpu --batch-size 2 --warmup-steps 0 --steps 1 --metrics-file "$tmp/real.jsonl" \
    >"$tmp/real.out" 2>&1
  out=$(py ratio --distnet "$tmp/real.jsonl" --pytorch "$tmp/c.log" 2>&1)
  rc=$?
  [ "$rc" -eq 0 ] && grep -qE '^ratio compute batch 2: distnet [0-9.]+ / pytorch [0-9.]+ \(.*\) = [0-9.]+$' <<<"$out" \
    && grep -q "^note: .*distnet ran on cpu" <<<"$out" && ok "ratio against a real distnet run" \
    || bad "ratio against $bin exited $rc: $out"
fi

# e2e on a tiny generated Fashion-MNIST lookalike: 10 train, 6 test images, gzipped and plain.
python3 - "$tmp" <<'EOF'
import gzip, os, random, struct, sys
random.seed(1)
def write(path, magic, shape, data, gz):
    raw = struct.pack(">I", magic) + struct.pack(f">{len(shape)}I", *shape) + bytes(data)
    with (gzip.open(path + ".gz", "wb") if gz else open(path, "wb")) as f:
        f.write(raw)
for d, gz in (("idxgz", True), ("idx", False)):
    os.makedirs(os.path.join(sys.argv[1], d))
    for split, n in (("train", 10), ("t10k", 6)):
        p = os.path.join(sys.argv[1], d, split)
        write(p + "-images-idx3-ubyte", 0x803, (n, 28, 28), [random.randrange(256) for _ in range(n * 784)], gz)
        write(p + "-labels-idx1-ubyte", 0x801, (n,), [i % 10 for i in range(n)], gz)
os.makedirs(os.path.join(sys.argv[1], "bad"))
write(os.path.join(sys.argv[1], "bad", "train-images-idx3-ubyte"), 0x803, (10, 28, 28), [0] * 100, False)
EOF
for d in idxgz idx; do
  py e2e --device cpu --data-dir "$tmp/$d" --batch 4 --workers 0 --epochs 2 --warmup 1 --eval \
    >"$tmp/e_$d.log" 2>"$tmp/e_$d.err"
  rc=$?
  [ "$rc" -eq 0 ] && ok "e2e on tiny $d runs" || bad "e2e $d exited $rc: $(tail -5 "$tmp/e_$d.err")"
  [ "$(grep -cE '^epoch [12], loss [0-9.]+, train acc [0-9.]+, [0-9.]+ examples/sec on cpu' "$tmp/e_$d.log")" -eq 2 ] \
    && grep -qE '^e2e result: [0-9.]+ images/s over 16 timed images \(6 steps\), train loss [0-9.]+, train acc [0-9.]+, test acc [0-9.]+$' "$tmp/e_$d.log" \
    && grep -q "interpolate" "$tmp/e_$d.log" \
    && ok "e2e $d: epoch lines, result line, resize named" || bad "e2e $d output: $(cat "$tmp/e_$d.log")"
done
python3 - "$tmp/e_idx.log" <<'EOF' && ok "e2e: JSON lines" || bad "e2e JSON: $(grep '^{' "$tmp/e_idx.log")"
import json, sys
rs = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
assert [r.get("event") for r in rs] == ["epoch", "epoch", None], rs
assert all(r["impl"] == "pytorch" and r["mode"] == "e2e" and r["batch"] == 4 for r in rs)
assert [r["images"] for r in rs[:2]] == [10, 10] and rs[2]["steps"] == 6 and rs[2]["images_per_s"] > 0
assert 0 <= rs[2]["test_acc"] <= 1
EOF
if [ -e /usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz ] ||
   [ -e /usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte ]; then
  py e2e --device cpu --steps 2 --batch 4 --workers 0 >"$tmp/fm.log" 2>"$tmp/fm.err"
  rc=$?
  [ "$rc" -eq 0 ] && grep -q "^e2e: /usr/share/datasets/fashion-mnist, 60000 training images" "$tmp/fm.log" \
    && grep -qE '^e2e result: [0-9.]+ images/s over 4 timed images \(2 steps\)' "$tmp/fm.log" \
    && ok "e2e on Fashion-MNIST (2 steps)" || bad "e2e Fashion-MNIST exited $rc: $(cat "$tmp/fm.log" "$tmp/fm.err")"
else
  echo "note: /usr/share/datasets/fashion-mnist not installed; its e2e check was not run"
fi

# Errors: one line on stderr and the exit code (2 usage, 1 a missing or corrupt file).
expect_err() {
  local code=$1 pattern=$2
  shift 2
  local out rc
  out=$(py "$@" 2>&1 >/dev/null)
  rc=$?
  if [ "$rc" -eq "$code" ] && grep -qE -- "$pattern" <<<"$out" && [ "$(wc -l <<<"$out")" -eq 1 ]; then
    ok "error: $*"
  else
    bad "$* exited $rc (expected $code): $out (expected /$pattern/)"
  fi
}
if python3 -c 'import sys, torch; sys.exit(torch.cuda.is_available())' 2>/dev/null; then
  expect_err 2 "error: --device cuda but torch.cuda.is_available\(\) is False" compute
  expect_err 2 "error: --device cuda but torch.cuda.is_available\(\) is False" e2e --device cuda
else
  echo "note: CUDA is available here; the no-CUDA error was not checked"
fi
expect_err 2 "argument --batch: expected a comma-separated list of positive integers, got '0,2'" compute --device cpu --batch 0,2
expect_err 2 "argument --formats: expected a comma-separated list of contiguous, channels_last" compute --device cpu --formats nhwc
expect_err 2 "argument --steps: must be at least 1, got 0" compute --device cpu --steps 0
expect_err 1 "error: $tmp/none/train-images-idx3-ubyte\[.gz\]: no such file" e2e --device cpu --data-dir "$tmp/none"
expect_err 1 "error: $tmp/bad/train-images-idx3-ubyte: truncated: header says 10x28x28" e2e --device cpu --data-dir "$tmp/bad"
expect_err 1 "error: no distnet benchmark or epoch records in $tmp/c.err" ratio --distnet "$tmp/c.err" --pytorch "$tmp/c.log"
expect_err 1 "error: $tmp/missing.jsonl: No such file or directory" ratio --distnet "$tmp/missing.jsonl" --pytorch "$tmp/c.log"

echo "$pass passed, $fails failed"
[ "$fails" -eq 0 ]
