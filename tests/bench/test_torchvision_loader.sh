#!/usr/bin/env bash
# bench/torchvision_loader_bench.py (run, ratio) and bench/loader_vs_torchvision.sh on a tiny
# generated photo tree: result lines, JSON records, the ratio lines, the one-line errors. No
# timing is asserted. Exit 77 (skip) where torch or torchvision cannot be imported.
#   test_torchvision_loader.sh BUILD_DIR PATH/TO/distnet_make_photo_folder
set -u
here=$(cd "$(dirname "$0")" && pwd)
script=$here/../../bench/torchvision_loader_bench.py
driver=$here/../../bench/loader_vs_torchvision.sh
build=$1
maker=$2
if ! python3 -c 'import torch, torchvision' >/dev/null 2>&1; then
  echo "SKIP: python3 cannot import torch and torchvision (pip install torch torchvision --index-url https://download.pytorch.org/whl/cpu)"
  exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0
fails=0
ok() { echo "ok: $1"; pass=$((pass + 1)); }
bad() { echo "FAIL: $1"; fails=$((fails + 1)); }
"$maker" "$tmp/photos" 2 1 || bad "maker failed"

python3 "$script" run --data-dir "$tmp/photos" --cores 1,2 --images 8 --repeats 2 --batch 4 \
  >"$tmp/t.log" 2>"$tmp/t.err"
rc=$?
[ "$rc" -eq 0 ] && ok "run" || bad "run exited $rc: $(tail -5 "$tmp/t.err")"
[ "$(grep -cE '^torchvision (train|eval) cores [12]: [0-9.]+ images/s \(runs [0-9.]+-[0-9.]+\), [0-9.]+ per core; [0-9.]+ images per CPU-second$' "$tmp/t.log")" -eq 4 ] &&
  ok "4 result lines" || bad "result lines: $(cat "$tmp/t.log")"
python3 - "$tmp/t.log" <<'PY' && ok "JSON records" || bad "JSON: $(grep '^{' "$tmp/t.log")"
import json, sys
rs = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
assert sorted((r["transform"], r["cores"]) for r in rs) == [("eval", 1), ("eval", 2), ("train", 1), ("train", 2)], rs
assert all(r["impl"] == "torchvision" and r["images_per_s"] > 0 and len(r["images_per_s_runs"]) == 2 for r in rs)
assert all(r["images_per_cpu_s"] > 0 for r in rs), rs
PY

"$driver" "$build" "$tmp/photos" 1 8 "$tmp/drv" >"$tmp/d.log" 2>&1
rc=$?
[ "$rc" -eq 0 ] && ok "driver runs" || bad "driver exited $rc: $(tail -5 "$tmp/d.log")"
cores=$(nproc)
want=2
[ "$cores" -eq 1 ] && want=1
n=$(grep -cE '^ratio (train|eval) cores [0-9]+: distnet [0-9.]+ \([0-9.]+-[0-9.]+, 1 runs\) / torchvision [0-9.]+ \([0-9.]+-[0-9.]+, 1 runs\) images/s = [0-9.]+; per core [0-9.]+ / [0-9.]+$' "$tmp/d.log")
[ "$n" -eq $((2 * want)) ] && ok "ratio lines" || bad "ratio lines ($n): $(cat "$tmp/d.log")"
grep -q '^machine: ' "$tmp/d.log" && ok "machine line" || bad "no machine line"
[ "$(grep -cE '^  paired by round: [0-9.]+ \(median [0-9.]+\)$' "$tmp/d.log")" -eq $((2 * want)) ] &&
  [ "$(grep -cE '^  per CPU-second: distnet [0-9.]+ / torchvision [0-9.]+ images = [0-9.]+$' "$tmp/d.log")" -eq $((2 * want)) ] &&
  ok "paired and per-CPU-second ratios" || bad "paired/CPU lines: $(cat "$tmp/d.log")"

expect_err() {
  local code=$1 pattern=$2
  shift 2
  local out rc
  out=$(python3 "$script" "$@" 2>&1 >/dev/null)
  rc=$?
  [ "$rc" -eq "$code" ] && grep -qE -- "$pattern" <<<"$out" && [ "$(wc -l <<<"$out")" -eq 1 ] &&
    ok "error: $*" || bad "$* exited $rc (expected $code): $out"
}
expect_err 1 "error: $tmp/none/train: no such directory" run --data-dir "$tmp/none"
expect_err 2 "argument --cores: expected a comma-separated list of positive integers, got '0'" run --data-dir "$tmp/photos" --cores 0
expect_err 2 "expected train, eval or train,eval, got 'x'" run --data-dir "$tmp/photos" --transforms x --images 1
expect_err 1 "error: no distnet records in $tmp/t.err" ratio --distnet "$tmp/t.err" --torchvision "$tmp/t.log"

echo "$pass passed, $fails failed"
[ "$fails" -eq 0 ]
