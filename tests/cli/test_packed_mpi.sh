#!/usr/bin/env bash
# alexnet-pack and --dataset packed end to end under mpiexec (docs/packed-shards.md): packing in
# parallel and resuming (damaged shards repacked), a shard read with h5py (checksums, non-UTF-8
# names), training on shards = training on the image folder bit for bit (1 and 3 ranks), exact
# resume, and every bad shard, record or manifest.
#   test_packed_mpi.sh PATH/TO/alexnet PATH/TO/alexnet-pack PATH/TO/distnet_make_image_folder MPIEXEC [FLAGS...]
set -u
bin=$1
pack=$2
make_tree=$3
shift 3
mpi=("$@")
pass=0
fails=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ok() { echo "ok: $1"; pass=$((pass + 1)); }
bad() { echo "FAIL: $1"; fails=$((fails + 1)); }
same_state() { h5diff "$1" "$2" /params /params >/dev/null && h5diff "$1" "$2" /momentum /momentum >/dev/null; }
last_ckpt() { ls "$1"/ckpt-*.h5 2>/dev/null | tail -1; }

"$make_tree" "$tmp/tree" 8 3 40 200 >/dev/null || { echo "FAIL: cannot make the tree"; exit 1; }
tree=$tmp/tree
small=(--shard-mb 1 --shard-records 7)  # 80 + 30 images: 12 + 5 shards

# Options, each refused with exit 2 and one line.
expect_usage() {  # expect_usage "message" program args...
  local msg=$1; shift
  out=$("$@" 2>&1); rc=$?
  [ "$rc" -eq 2 ] && [ "$(grep -c "error: .*$msg" <<<"$out")" -eq 1 ] && ok "usage: $msg" \
    || bad "usage '$msg': exit $rc: $out"
}
expect_usage "give the image folder and the output directory" "$pack" "$tree"
expect_usage "--shard-mb must be between 1 and 1048576 (1 TiB), got 0" "$pack" "$tree" "$tmp/x" --shard-mb 0
expect_usage "--on-bad-image must be one of error, skip, got 'keep'" "$pack" "$tree" "$tmp/x" --on-bad-image keep
expect_usage "--dataset packed needs --data-dir DIR" "$bin" --dataset packed
out=$("$bin" --dataset packed --data-dir "$tmp/none" --print-shapes 2>&1); rc=$?
[ "$rc" -eq 1 ] && [ "$(grep -c "alexnet: error: $tmp/none/manifest.txt: missing" <<<"$out")" -eq 1 ] \
  && ok "--print-shapes without a manifest: exit 1, one line" || bad "print-shapes: exit $rc: $out"
"$pack" --help | grep -q "srun -n K alexnet-pack SRC OUT" && ok "alexnet-pack --help" || bad "alexnet-pack --help"
"$bin" --help | tr -s ' \n' ' ' | grep -q "or packed (HDF5 shards of an image folder written by alexnet-pack" && ok "alexnet --help names packed" || bad "alexnet --help"

# Packing in parallel; the plan does not depend on the rank count.
out=$("${mpi[@]}" -n 3 "$pack" "$tree" "$tmp/p3" "${small[@]}" 2>&1); rc=$?
[ "$rc" -eq 0 ] && grep -q "80 train + 30 val images in 17 shards (17 packed now, 0 kept)" <<<"$out" \
  && ok "3 ranks pack 17 shards" || bad "pack on 3 ranks: exit $rc: $out"
"$pack" "$tree" "$tmp/p1" "${small[@]}" >/dev/null 2>&1
diff <(sed 1,2d "$tmp/p3/manifest.txt") <(sed 1,2d "$tmp/p1/manifest.txt") >/dev/null \
  && ok "1 rank writes the same shards (manifest and checksums)" || bad "1 and 3 ranks pack differently"

# h5py reads a shard: a record's bytes are the source file's, with its label, path and size.
/usr/bin/python3 - "$tmp/p3/train-00001.h5" "$tree/train" <<'PY' && ok "h5py: record bytes equal the source file" || bad "h5py check"
import sys, struct, zlib, h5py, numpy as np
f = h5py.File(sys.argv[1], "r")
assert f.attrs["format"] in (b"distnet-packed-shard", "distnet-packed-shard") and f.attrs["version"] == 2
classes = [c.decode() for c in f["classes"][:]]
for i in range(f.attrs["records"]):
    off, n = int(f["offsets"][i]), int(f["lengths"][i])
    path = f["paths"][i].decode()
    data = f["bytes"][off:off + n].tobytes()
    assert data == open(sys.argv[2] + "/" + path, "rb").read(), path
    assert path.split("/")[0] == classes[f["labels"][i]], path
    assert f["widths"][i] >= 40 and f["heights"][i] >= 40
    label = int(f["labels"][i])  # /crc32: the record's bytes, then its label (docs/packed-shards.md)
    assert zlib.crc32(struct.pack("<i", label), zlib.crc32(data)) == f["crc32"][i], path
PY

# A file name that is not valid UTF-8 (and one with a '%'): h5py reads every name of the shards
# as str, and urllib.parse.unquote_to_bytes gives the file system's bytes back.
cp -r "$tree" "$tmp/u8tree"
cp "$(ls "$tree"/train/c1-trouser/*.png | head -1)" "$tmp/u8tree/train/c1-trouser/$(printf 'caf\xe9 100%%.png')"
out=$("$pack" "$tmp/u8tree" "$tmp/u8" "${small[@]}" 2>&1); rc=$?
[ "$rc" -eq 0 ] && /usr/bin/python3 - "$tmp/u8" "$tmp/u8tree/train" <<'PY' && ok "h5py reads a non-UTF-8 file name; unquote_to_bytes gives its bytes" || bad "non-UTF-8 name: exit $rc: $out"
import glob, os, sys, urllib.parse, h5py
names = set()
for shard in sorted(glob.glob(sys.argv[1] + "/train-*.h5")):
    with h5py.File(shard, "r") as f:
        for i, p in enumerate(f["paths"].asstr()[:]):  # str: every name is valid UTF-8
            raw = urllib.parse.unquote_to_bytes(p)
            off, n = int(f["offsets"][i]), int(f["lengths"][i])
            assert f["bytes"][off:off + n].tobytes() == open(os.fsencode(sys.argv[2]) + b"/" + raw, "rb").read(), p
            names.add(raw)
        [c for c in f["classes"].asstr()[:]]
on_disk = {os.path.relpath(q, os.fsencode(sys.argv[2])) for q in glob.glob(os.fsencode(sys.argv[2]) + b"/*/*")}
assert b"c1-trouser/caf\xe9 100%.png" in names and names == on_disk, (len(names), len(on_disk))
PY

# Resumable: a lost shard and a half-written one (left under the temporary name) are packed
# again, the finished ones kept, and the manifest is the same.
cp "$tmp/p3/manifest.txt" "$tmp/manifest.before"
rm "$tmp/p3/train-00004.h5"
head -c 3000 "$tmp/p3/val-00001.h5" >"$tmp/p3/val-00001.h5.tmp"
rm "$tmp/p3/val-00001.h5"
out=$("${mpi[@]}" -n 2 "$pack" "$tree" "$tmp/p3" "${small[@]}" 2>&1); rc=$?
[ "$rc" -eq 0 ] && grep -q "(2 packed now, 15 kept)" <<<"$out" && cmp -s "$tmp/manifest.before" "$tmp/p3/manifest.txt" \
  && ok "rerun packs the 2 missing shards, keeps 15, same manifest" || bad "resume: exit $rc: $out"

# Damage that keeps the file a valid HDF5 shard: a flipped byte inside a record's data and an
# edited label. A rerun finds both by their checksums and packs the two shards again, each named
# in one line; the manifest is the same as before.
cp -r "$tmp/p3" "$tmp/dmg"
/usr/bin/python3 - "$tmp/dmg/train-00003.h5" "$tmp/dmg/val-00000.h5" <<'PY'
import sys, h5py
with h5py.File(sys.argv[1], "r") as f:
    at = f["bytes"].id.get_offset() + int(f["offsets"][2]) + int(f["lengths"][2]) // 2
with open(sys.argv[1], "r+b") as out:  # the file's bytes, as a disk would damage them
    out.seek(at); b = out.read(1); out.seek(at); out.write(bytes([b[0] ^ 0x10]))
with h5py.File(sys.argv[2], "r+") as f:
    f["labels"][1] = (f["labels"][1] + 1) % 10
PY
out=$("${mpi[@]}" -n 2 "$pack" "$tree" "$tmp/dmg" "${small[@]}" 2>&1); rc=$?
[ "$rc" -eq 0 ] && grep -q "(2 packed now, 15 kept)" <<<"$out" \
  && [ "$(grep -c "alexnet-pack: warning: $tmp/dmg/train-00003.h5: record 2 (.*): bytes or label changed since packing: CRC-32 [0-9a-f]*, expected [0-9a-f]* (/crc32); packing it again" <<<"$out")" -eq 1 ] \
  && [ "$(grep -c "alexnet-pack: warning: $tmp/dmg/val-00000.h5: record 1 (.*) has label .*, expected .*; packing it again" <<<"$out")" -eq 1 ] \
  && cmp -s "$tmp/manifest.before" "$tmp/dmg/manifest.txt" \
  && ok "rerun finds a flipped byte and an edited label, repacks those 2 shards, says so" || bad "damaged resume: exit $rc: $out"
rm -rf "$tmp/dmg"

# Training on the shards = training on the image folder, bit for bit, on 1 and 3 ranks.
run=(--model lenet --resize 32 --batch-size 20 --lr 0.05 --momentum 0.9 --workers 1)
for n in 1 3; do
  "${mpi[@]}" -n $n "$bin" "${run[@]}" --epochs 1 --dataset imagefolder --data-dir "$tree" --checkpoint-dir "$tmp/if$n" >"$tmp/if$n.log" 2>&1
  "${mpi[@]}" -n $n "$bin" "${run[@]}" --epochs 1 --dataset packed --data-dir "$tmp/p3" --checkpoint-dir "$tmp/pk$n" >"$tmp/pk$n.log" 2>&1
  a=$(last_ckpt "$tmp/if$n"); b=$(last_ckpt "$tmp/pk$n")
  [ -n "$a" ] && [ -n "$b" ] && same_state "$a" "$b" && ok "$n rank(s): packed = imagefolder, bitwise" \
    || bad "$n rank(s): packed differs: $(tail -2 "$tmp/pk$n.log")"
done
a=$(last_ckpt "$tmp/pk1"); b=$(last_ckpt "$tmp/pk3")
/usr/bin/python3 - "$a" "$b" <<'PY' && ok "packed: 3 ranks = 1 process (within 1e-4)" || bad "packed: 3 ranks differ from 1"
import sys, h5py, numpy as np
def arrays(p):
    out = {}
    h5py.File(p, "r")["params"].visititems(lambda k, o: out.__setitem__(k, o[()]) if isinstance(o, h5py.Dataset) else None)
    return out
a, b = arrays(sys.argv[1]), arrays(sys.argv[2])
sys.exit(0 if a and a.keys() == b.keys() and max(float(np.max(np.abs(a[k] - b[k]))) for k in a) < 1e-4 else 1)
PY
diff "$tmp/pk1/classes.txt" <(ls "$tree/train") >/dev/null && ok "classes.txt from the manifest" || bad "classes.txt"

# Exact resume on 2 ranks.
"${mpi[@]}" -n 2 "$bin" "${run[@]}" --epochs 2 --dataset packed --data-dir "$tmp/p3" --checkpoint-dir "$tmp/straight" >/dev/null 2>&1
"${mpi[@]}" -n 2 "$bin" "${run[@]}" --epochs 1 --dataset packed --data-dir "$tmp/p3" --checkpoint-dir "$tmp/split" >/dev/null 2>&1
"${mpi[@]}" -n 2 "$bin" "${run[@]}" --epochs 2 --dataset packed --data-dir "$tmp/p3" --checkpoint-dir "$tmp/split" --resume auto >"$tmp/resumed.log" 2>&1
final=$(last_ckpt "$tmp/straight")
[ -n "$final" ] && same_state "$final" "$tmp/split/$(basename "$final")" && ok "packed: resume is bitwise exact" \
  || bad "packed resume differs: $(tail -2 "$tmp/resumed.log")"

# Bad shards and manifests: one line naming the file, non-zero exit, under mpiexec.
pk=(--dataset packed --model lenet --resize 32 --batch-size 20 --workers 1 --epochs 1)
expect_fail() {  # expect_fail "what" "message" DIR [more alexnet args]
  local what=$1 msg=$2 dir=$3; shift 3
  out=$("${mpi[@]}" -n 2 "$bin" "${pk[@]}" --data-dir "$dir" "$@" 2>&1); rc=$?
  [ "$rc" -ne 0 ] && [ "$(grep -c "alexnet: error: .*$msg" <<<"$out")" -ge 1 ] && ok "$what: exit $rc, named" \
    || bad "$what: exit $rc: $out"
}
fresh() { rm -rf "$tmp/b"; cp -r "$tmp/p1" "$tmp/b"; }
fresh; rm "$tmp/b/train-00002.h5"
expect_fail "missing shard" "$tmp/b/train-00002.h5: missing shard file" "$tmp/b"
fresh; head -c 5000 "$tmp/p1/train-00002.h5" >"$tmp/b/train-00002.h5"
expect_fail "truncated shard" "$tmp/b/train-00002.h5: " "$tmp/b"
fresh; echo garbage >"$tmp/b/val-00000.h5"
expect_fail "corrupt HDF5 file" "$tmp/b/val-00000.h5: not an HDF5 file" "$tmp/b"
fresh; rm "$tmp/b/manifest.txt"
expect_fail "no manifest" "$tmp/b/manifest.txt: missing" "$tmp/b"
fresh; /usr/bin/python3 - "$tmp/b/manifest.txt" <<'PY'
import sys
t = open(sys.argv[1]).read(); v = t.index("split val")
open(sys.argv[1], "w").write(t[:v] + t[v:].replace("c3-dress", "c3-gown", 1))
PY
expect_fail "classes differ between splits" "manifest.txt: train and val name different classes (10 and 10): 'c3-dress' is only in train" "$tmp/b"
# A shard from another packing (5 records a shard) in place of this one (7).
fresh; "$pack" "$tree" "$tmp/p5" --shard-records 5 >/dev/null 2>&1; cp "$tmp/p5/train-00001.h5" "$tmp/b/train-00001.h5"
expect_fail "record count differs from the manifest" "$tmp/b/train-00001.h5: holds 5 records, $tmp/b/manifest.txt says 7" "$tmp/b"
# An index that disagrees with its data: a length past the end of /bytes.
fresh; /usr/bin/python3 - "$tmp/b/val-00001.h5" <<'PY'
import sys, h5py
with h5py.File(sys.argv[1], "r+") as f:
    f["lengths"][2] = f["bytes"].shape[0]
PY
expect_fail "index beyond the data" "$tmp/b/val-00001.h5: record 2 (.*) has offset .* beyond the .* bytes of /bytes; the index disagrees with the data" "$tmp/b"
fresh; /usr/bin/python3 - "$tmp/b/train-00000.h5" <<'PY'
import sys, h5py
with h5py.File(sys.argv[1], "r+") as f:
    f["labels"][3] = 10
PY
expect_fail "label out of range" "$tmp/b/train-00000.h5: record 3 (.*) has label 10, but /classes has 10 classes" "$tmp/b"
# Corrupt image bytes inside a shard: named by the source path, or skipped.
fresh; rec=$(/usr/bin/python3 - "$tmp/b/train-00000.h5" <<'PY'
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r+") as f:
    for i in range(f.attrs["records"]):
        off, n = int(f["offsets"][i]), int(f["lengths"][i])
        if bytes(f["bytes"][off:off + 3]) == b"\xff\xd8\xff":
            f["bytes"][off + n // 2:off + n] = np.zeros(n - n // 2, np.uint8)
            print(f["paths"][i].decode()); break
PY
)
expect_fail "corrupt image in a shard" "$tree/train/$rec (in $tmp/b/train-00000.h5, record [0-9]*): " "$tmp/b"
out=$("${mpi[@]}" -n 2 "$bin" "${pk[@]}" --data-dir "$tmp/b" --on-bad-image skip 2>&1); rc=$?
[ "$rc" -eq 0 ] && grep -q "^epoch 1 (training): 1 bad image(s) replaced by the next good one" <<<"$out" \
  && ok "corrupt image in a shard: skipped and counted" || bad "skip in a shard: exit $rc: $out"

# A flipped byte inside a JPEG record, and an edited label: bad images, found by the record's
# checksum; one line naming the source path, the shard and the record, or skipped and counted.
for what in "flipped byte" "edited label"; do
  fresh; rec=$(/usr/bin/python3 - "$tmp/b/train-00001.h5" "$what" <<'PY'
import sys, h5py
with h5py.File(sys.argv[1], "r+") as f:
    for i in range(f.attrs["records"]):
        off, n = int(f["offsets"][i]), int(f["lengths"][i])
        if bytes(f["bytes"][off:off + 3]) == b"\xff\xd8\xff":
            if sys.argv[2] == "flipped byte":
                f["bytes"][off + n // 2] ^= 0x10
            else:
                f["labels"][i] = (f["labels"][i] + 1) % 10
            print(i, f["paths"][i].decode()); break
PY
)
  expect_fail "$what in a shard" "$tree/train/${rec#* } (in $tmp/b/train-00001.h5, record ${rec%% *}): bytes or label changed since packing: CRC-32 [0-9a-f]*, expected [0-9a-f]* (/crc32)" "$tmp/b"
  out=$("${mpi[@]}" -n 2 "$bin" "${pk[@]}" --data-dir "$tmp/b" --on-bad-image skip 2>&1); rc=$?
  [ "$rc" -eq 0 ] && grep -q "^epoch 1 (training): 1 bad image(s) replaced by the next good one" <<<"$out" \
    && ok "$what in a shard: skipped and counted" || bad "$what, skip: exit $rc: $out"
done

# Bad files at pack time: refused naming the file (every rank exits non-zero), or left out.
cp -r "$tree" "$tmp/badtree"
echo "not an image" >"$tmp/badtree/train/c2-pullover/0-notes.jpg"
out=$("${mpi[@]}" -n 2 "$pack" "$tmp/badtree" "$tmp/pb" 2>&1); rc=$?
[ "$rc" -eq 1 ] && grep -q "alexnet-pack: error: $tmp/badtree/train/c2-pullover/0-notes.jpg: " <<<"$out" \
  && [ ! -e "$tmp/pb/manifest.txt" ] && ok "bad file at pack time: exit 1, named, no manifest" || bad "pack-time error: exit $rc: $out"
out=$("${mpi[@]}" -n 2 "$pack" "$tmp/badtree" "$tmp/pb" --on-bad-image skip 2>&1); rc=$?
[ "$rc" -eq 0 ] && grep -q "warning: skipped $tmp/badtree/train/c2-pullover/0-notes.jpg" <<<"$out" \
  && grep -q "1 bad file(s) skipped" <<<"$out" && grep -q "^skipped 1$" "$tmp/pb/manifest.txt" \
  && ok "--on-bad-image skip at pack time: left out and listed" || bad "pack-time skip: exit $rc: $out"

echo "$pass passed, $fails failed"
[ "$fails" -eq 0 ]
