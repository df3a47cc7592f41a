#!/usr/bin/env bash
# --dataset imagefolder end to end, on a tree of real Fashion-MNIST pictures encoded as JPEG and
# PNG of many sizes and kinds (tests/data/image_folder_maker.hpp): options, N ranks = 1 process
# with augmentations on, exact resume, classes.txt, and every bad input under mpiexec.
#   test_imagefolder_mpi.sh PATH/TO/alexnet PATH/TO/distnet_make_image_folder MPIEXEC [FLAGS...]
set -u
bin=$1
make_tree=$2
shift 2
mpi=("$@")
pass=0
fails=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ok() { echo "ok: $1"; pass=$((pass + 1)); }
bad() { echo "FAIL: $1"; fails=$((fails + 1)); }
same_state() { h5diff "$1" "$2" /params /params >/dev/null && h5diff "$1" "$2" /momentum /momentum >/dev/null; }
# Parameters of two checkpoints equal to float tolerance (h5py, not distnet); prints the largest gap.
params_close() {
  /usr/bin/python3 - "$1" "$2" <<'PY'
import sys, h5py, numpy as np
def arrays(path):
    out = {}
    h5py.File(path, "r")["params"].visititems(
        lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return out
a, b = arrays(sys.argv[1]), arrays(sys.argv[2])
assert a and a.keys() == b.keys()
worst = max(float(np.max(np.abs(a[k] - b[k]))) for k in a)
print("largest parameter difference:", worst)
sys.exit(0 if worst < 1e-4 else 1)
PY
}

# 20 train and 5 val pictures per class, 40-200 px.
"$make_tree" "$tmp/tree" 20 5 40 200 || { echo "FAIL: cannot make the tree"; exit 1; }
tree=$tmp/tree
run=(--dataset imagefolder --data-dir "$tree" --model lenet --resize 32 --batch-size 20 --lr 0.05
  --momentum 0.9 --workers 1)

# Options, each refused with exit 2 and one line.
expect_usage() {  # expect_usage "message" args...
  local msg=$1; shift
  out=$("$bin" "$@" 2>&1); rc=$?
  [ "$rc" -eq 2 ] && [ "$(grep -c "alexnet: error: .*$msg" <<<"$out")" -eq 1 ] && ok "usage: $msg" \
    || bad "usage '$msg': exit $rc: $out"
}
expect_usage "--dataset imagefolder needs --data-dir DIR" --dataset imagefolder
expect_usage "--resize 0 keeps the dataset's image size" --dataset imagefolder --data-dir "$tree" --resize 0
expect_usage "--on-bad-image must be one of error, skip, got 'ignore'" "${run[@]}" --on-bad-image ignore
expect_usage "--on-bad-image skip applies to --dataset imagefolder and packed only" --on-bad-image skip
expect_usage "--augment must be one of standard, none, got 'heavy'" "${run[@]}" --augment heavy
expect_usage "--augment none applies to --dataset imagefolder and packed only" --augment none
out=$("$bin" "${run[@]}" --print-shapes 2>&1)
grep -q "input 3x32x32, 10 classes" <<<"$out" && ok "--print-shapes: 3x32x32, 10 classes" || bad "print-shapes: $out"
"$bin" "${run[@]}" --print-config | grep -q "^normalize-mean = 0.485,0.456,0.406$" \
  && ok "ImageNet mean by default" || bad "no ImageNet mean: $("$bin" "${run[@]}" --print-config | grep normalize)"

out=$("$bin" "${run[@]}" --benchmark --warmup-steps 0 --steps 1 2>&1); rc=$?
[ "$rc" -eq 0 ] && grep -q "input 3x32x32" <<<"$out" && ok "--benchmark times 3-channel images" \
  || bad "benchmark: exit $rc: $out"

# N ranks = 1 process, augmentations on: 1 and 3 ranks (20 does not split evenly over 3), one
# epoch, the same parameters to float tolerance and the same figures.
for n in 1 3; do
  "${mpi[@]}" -n $n "$bin" "${run[@]}" --epochs 1 --checkpoint-dir "$tmp/np$n" \
    --metrics-file "$tmp/np$n.jsonl" >"$tmp/np$n.log" 2>&1 && ok "$n-rank run" || bad "$n-rank run: $(cat "$tmp/np$n.log")"
done
c1=$(ls "$tmp"/np1/ckpt-*.h5 2>/dev/null | tail -1); c3=$(ls "$tmp"/np3/ckpt-*.h5 2>/dev/null | tail -1)
params_close "$c1" "$c3" && ok "3 ranks = 1 process (parameters within 1e-4)" || bad "3 ranks differ from 1 process"
l1=$(grep -o '"loss":[0-9.]*' "$tmp/np1.jsonl" | head -1); l3=$(grep -o '"loss":[0-9.]*' "$tmp/np3.jsonl" | head -1)
[ -n "$l1" ] && [ "${l1:0:12}" = "${l3:0:12}" ] && ok "same epoch loss ($l1, $l3)" || bad "loss $l1 vs $l3"
if diff <(ls "$tree/train") "$tmp/np1/classes.txt" >/dev/null; then ok "classes.txt lists the classes in label order"
else bad "classes.txt: $(cat "$tmp/np1/classes.txt" 2>&1)"; fi

# Exact resume on 2 ranks: two epochs straight = one, then a resumed second (bitwise).
"${mpi[@]}" -n 2 "$bin" "${run[@]}" --epochs 2 --checkpoint-dir "$tmp/straight" >"$tmp/straight.log" 2>&1
"${mpi[@]}" -n 2 "$bin" "${run[@]}" --epochs 1 --checkpoint-dir "$tmp/split" >/dev/null 2>&1
"${mpi[@]}" -n 2 "$bin" "${run[@]}" --epochs 2 --checkpoint-dir "$tmp/split" --resume auto >"$tmp/resumed.log" 2>&1
final=$(ls "$tmp"/straight/ckpt-*.h5 2>/dev/null | tail -1)
[ -n "$final" ] && same_state "$final" "$tmp/split/$(basename "$final")" && ok "resume is bitwise exact" \
  || bad "resumed run differs: $(tail -3 "$tmp/straight.log") / $(tail -3 "$tmp/resumed.log")"

# Bad input. A copy of the tree with one truncated JPEG in train.
cp -r "$tree" "$tmp/broken"
whole=$(ls "$tree"/train/c4-coat/*.jpg | head -1)
head -c $(($(stat -c %s "$whole") / 2)) "$whole" >"$tmp/broken/train/c4-coat/0-truncated.jpg"
brk=(--dataset imagefolder --data-dir "$tmp/broken" --model lenet --resize 32 --batch-size 20 --workers 1 --epochs 1)
out=$("${mpi[@]}" -n 2 "$bin" "${brk[@]}" 2>&1); rc=$?
[ "$rc" -ne 0 ] && grep -q "alexnet: error: .*broken/train/c4-coat/0-truncated.jpg: corrupt or truncated JPEG data" <<<"$out" \
  && ok "truncated image: exit $rc, named" || bad "truncated image: exit $rc: $out"
out=$("${mpi[@]}" -n 2 "$bin" "${brk[@]}" --on-bad-image skip --metrics-file "$tmp/skip.jsonl" 2>&1); rc=$?
[ "$rc" -eq 0 ] && grep -q "^epoch 1 (training): 1 bad image(s) replaced by the next good one" <<<"$out" \
  && grep -q "warning: epoch 1 (training): 1 bad image replaced, the first: .*0-truncated.jpg" <<<"$out" \
  && ok "--on-bad-image skip: counted and named" || bad "skip: exit $rc: $out"
# Skipping keeps the slices consistent: with the bad file, 3 ranks still equal 1 process.
for n in 1 3; do
  "${mpi[@]}" -n $n "$bin" "${brk[@]}" --on-bad-image skip --checkpoint-dir "$tmp/skip$n" >"$tmp/skip$n.log" 2>&1
done
params_close "$tmp"/skip1/ckpt-*.h5 "$tmp"/skip3/ckpt-*.h5 && ok "skip: 3 ranks = 1 process" \
  || bad "skip: 3 ranks differ: $(tail -2 "$tmp/skip3.log")"
rm "$tmp/broken/train/c4-coat/0-truncated.jpg"
ln -s "$tmp/nowhere.jpg" "$tmp/broken/train/c4-coat/0-dangling.jpg"  # root reads anything chmod'ed
out=$("${mpi[@]}" -n 2 "$bin" "${brk[@]}" 2>&1); rc=$?
[ "$rc" -ne 0 ] && grep -q "0-dangling.jpg: cannot open: a symbolic link to a file that does not exist" <<<"$out" \
  && ok "unreadable file: exit $rc, named" || bad "unreadable file: exit $rc: $out"
rm "$tmp/broken/train/c4-coat/0-dangling.jpg"
# A decompression bomb: a PNG header claiming 65000 x 65000 pixels, refused before allocation.
/usr/bin/python3 - "$tmp/broken/val/c1-trouser/bomb.png" <<'PY'
import struct, sys, zlib
def chunk(t, d): return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
open(sys.argv[1], "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 65000, 65000, 8, 2, 0, 0, 0))
                              + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
PY
out=$("${mpi[@]}" -n 2 "$bin" "${brk[@]}" 2>&1); rc=$?
[ "$rc" -ne 0 ] && grep -q "val/c1-trouser/bomb.png: PNG header claims 65000 x 65000 = 4225000000 pixels, above the limit of 178956970" <<<"$out" \
  && ok "decompression bomb: exit $rc, named" || bad "bomb: exit $rc: $out"
rm "$tmp/broken/val/c1-trouser/bomb.png"
rm "$tmp"/broken/val/c7-sneaker/*
out=$("${mpi[@]}" -n 2 "$bin" "${brk[@]}" 2>&1); rc=$?
[ "$rc" -eq 1 ] && [ "$(grep -c "broken/val/c7-sneaker: empty class folder" <<<"$out")" -eq 1 ] \
  && ok "empty class folder: exit 1, one message" || bad "empty class: exit $rc: $out"
rmdir "$tmp/broken/val/c7-sneaker"
out=$("${mpi[@]}" -n 2 "$bin" "${brk[@]}" 2>&1); rc=$?
[ "$rc" -eq 1 ] && [ "$(grep -c "have different classes (10 and 9): 'c7-sneaker' is only in train" <<<"$out")" -eq 1 ] \
  && ok "different class sets: exit 1, one message" || bad "class sets: exit $rc: $out"

# The ImageNet config end to end (torchvision's AlexNet on 224 crops), a few images on 2 ranks.
ini=$(dirname "$0")/../../configs/imagenet-alexnet.ini
out=$("${mpi[@]}" -n 2 "$bin" --config "$ini" --data-dir "$tree" --train-limit 20 --test-limit 10 \
  --batch-size 10 --eval-batch-size 5 --epochs 1 --progress off 2>&1); rc=$?
[ "$rc" -eq 0 ] && grep -q "^model alexnet-torchvision (57,044,810 parameters), input 3x224x224, 10 classes$" <<<"$out" \
  && grep -qE "^epoch 1, loss [0-9.]+, train acc [0-9.]+, test acc [0-9.]+, top-5 [0-9.]+, .* on 2 ranks \(cpu\)$" <<<"$out" \
  && ok "configs/imagenet-alexnet.ini trains on 2 ranks" || bad "imagenet config: exit $rc: $out"

echo "$pass passed, $fails failed"
[ "$fails" -eq 0 ]
