#!/usr/bin/env bash
# distnet_loader_bench's encoded-image mode on a tiny generated photo tree: the per-transform,
# per-core-count lines and JSON records, positive figures for every stage, the usage errors; and
# the fixed-size (Loader) mode still running. No timing is asserted.
#   test_loader_bench.sh PATH/TO/distnet_loader_bench PATH/TO/distnet_make_photo_folder
set -u
bench=$1
maker=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0
fails=0
ok() { echo "ok: $1"; pass=$((pass + 1)); }
bad() { echo "FAIL: $1"; fails=$((fails + 1)); }

"$maker" "$tmp/photos" 2 1 >"$tmp/make.log" 2>&1 && ok "photo tree made" || bad "maker: $(cat "$tmp/make.log")"
n=$(find "$tmp/photos/train" -name '*.JPEG' | wc -l)
[ "$n" -eq 20 ] && ok "20 training photos" || bad "$n training photos"

"$bench" --dataset imagefolder --data-dir "$tmp/photos" --cores 1,2 --images 12 --repeats 2 \
  >"$tmp/b.log" 2>"$tmp/b.err"
rc=$?
[ "$rc" -eq 0 ] && ok "bench runs" || bad "bench exited $rc: $(cat "$tmp/b.err")"
[ ! -s "$tmp/b.err" ] && ok "nothing on stderr" || bad "stderr: $(cat "$tmp/b.err")"
line='^distnet (train|eval) cores [12]: [0-9.]+ images/s \(runs [0-9.]+-[0-9.]+\), [0-9.]+ per core; ms per image: read [0-9.]+, decode [0-9.]+, augment [0-9.]+, copy [0-9.]+; [0-9.]+ images per CPU-second$'
[ "$(grep -cE "$line" "$tmp/b.log")" -eq 4 ] && ok "4 result lines" || bad "result lines: $(cat "$tmp/b.log")"
grep -q '^transform train: RandomResizedCrop(224) + flip; dataset imagefolder ' "$tmp/b.log" &&
  grep -q '^transform eval: Resize(256) + CenterCrop(224); dataset imagefolder ' "$tmp/b.log" &&
  ok "transform lines" || bad "transform lines: $(grep transform "$tmp/b.log")"
python3 - "$tmp/b.log" <<'PY' && ok "JSON records, positive figures" || bad "JSON: $(grep '^{' "$tmp/b.log")"
import json, sys
rs = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
assert sorted((r["transform"], r["cores"]) for r in rs) == [("eval", 1), ("eval", 2), ("train", 1), ("train", 2)], rs
for r in rs:
    assert r["impl"] == "distnet" and r["dataset"] == "imagefolder" and r["size"] == 224 and r["images"] == 12, r
    assert r["images_per_s"] > 0 and len(r["images_per_s_runs"]) == 2 and min(r["images_per_s_runs"]) > 0, r
    assert abs(r["per_core"] - r["images_per_s"] / r["cores"]) < 0.02, r
    for k in ("decode_ms", "augment_ms", "copy_ms"):
        assert r[k] > 0, (k, r)
    assert r["read_ms"] >= 0 and r["images_per_cpu_s"] > 0, r
PY

"$bench" --dataset imagefolder --data-dir "$tmp/photos" --cores 1 --images 4 --repeats 1 \
  --transforms eval --resize 64 >"$tmp/e.log" 2>&1
grep -qE '^distnet eval cores 1: [0-9.]+ images/s' "$tmp/e.log" && ! grep -q '^distnet train' "$tmp/e.log" &&
  grep -q 'Resize(73) + CenterCrop(64)' "$tmp/e.log" && ok "--transforms eval --resize 64" ||
  bad "eval only: $(cat "$tmp/e.log")"

"$bench" --dataset synthetic --batches 2 --batch 8 --workers 0,1 >"$tmp/s.log" 2>&1
[ "$(grep -cE '^workers [01] images_per_s [0-9]+' "$tmp/s.log")" -eq 2 ] && ok "fixed-size mode" ||
  bad "fixed-size mode: $(cat "$tmp/s.log")"

expect_err() {
  local code=$1 pattern=$2
  shift 2
  local out rc
  out=$("$bench" "$@" 2>&1 >/dev/null)
  rc=$?
  [ "$rc" -eq "$code" ] && grep -qE -- "$pattern" <<<"$out" && [ "$(wc -l <<<"$out")" -eq 1 ] &&
    ok "error: $*" || bad "$* exited $rc (expected $code): $out"
}
expect_err 2 "error: --cores: counts must be >= 1" --dataset imagefolder --data-dir "$tmp/photos" --cores 0
expect_err 2 "error: --transforms: expected train, eval or train,eval, got 'test'" --dataset imagefolder \
  --data-dir "$tmp/photos" --transforms test
expect_err 2 "error: --dataset imagefolder needs --data-dir DIR" --dataset imagefolder
expect_err 1 "error: .*/none" --dataset imagefolder --data-dir "$tmp/none"

echo "$pass passed, $fails failed"
[ "$fails" -eq 0 ]
