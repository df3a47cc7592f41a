#!/usr/bin/env bash
# alexnet predict, as a user meets it (docs/interchange.md#predict): a LeNet trained on the real
# Fashion-MNIST classifies the test split exactly as --eval-only scores it, real Fashion-MNIST
# images written as PNG files give the same logits as the same images read from the IDX file,
# the same images as JPEG nearly the same accuracy; a checkpoint trained on an image folder names
# its classes from classes.txt and classifies a packed shard set; bad images, bad options and
# a launcher with several ranks each get one line and a non-zero exit, and leave no output file.
#   test_predict.sh PATH/TO/alexnet MPIEXEC [MPIEXEC FLAGS...]
set -u
bin=$1
shift
mpi=("$@")
here=$(cd "$(dirname "$0")/.." && pwd)
tools=$(cd "$here/../tools" && pwd)
py=/usr/bin/python3
pass=0
fails=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ok() { echo "ok: $1"; pass=$((pass + 1)); }
bad() { echo "FAIL: $1"; fails=$((fails + 1)); }
cd "$tmp" || exit 1

# A LeNet on 6,000 real training images, 2 epochs (about 10 s).
"$bin" --model lenet --epochs 2 --train-limit 6000 --batch-size 64 --lr 0.1 --device cpu \
  --checkpoint-dir ck --progress off >train.log 2>&1 || { cat train.log; exit 1; }
ckpt=ck/ckpt-epoch0002-step00000188.h5
[ -f "$ckpt" ] || { ls ck; exit 1; }

# 1. The test split: the accuracy --eval-only prints, and one row per image.
eval_acc=$("$bin" --eval-only --checkpoint "$ckpt" --device cpu 2>&1 | sed -n 's/.*test acc \([0-9.]*\).*/\1/p')
out=$("$bin" predict --checkpoint "$ckpt" --split test --logits -o split.csv --batch-size 100 2>&1)
rows=$(($(wc -l <split.csv) - 1))
grep -q "10000 images; top-1 accuracy $eval_acc against the labels (lenet on cpu)" <<<"$out" \
  && [ "$rows" -eq 10000 ] && ok "--split test: 10000 rows, accuracy $eval_acc as --eval-only" \
  || bad "--split test: $rows rows, '$out', eval-only $eval_acc"

# 1b. --eval-only needs only the split it evaluates: a directory with the test files alone, the
#     model, input size and normalisation from the checkpoint.
mkdir only-test
cp /usr/share/datasets/fashion-mnist/t10k-* only-test/
out=$("$bin" --eval-only --checkpoint "$ckpt" --device cpu --data-dir only-test 2>&1)
grep -q "test acc $eval_acc, top-5 [0-9.]* on 10000 samples" <<<"$out" \
  && ok "--eval-only with the test files alone: test acc $eval_acc" || bad "eval-only: $out"

# 2. The same images as PNG files (lossless): the same logits, and as JPEG (quality 95) nearly
#    the same accuracy. 50 per class from the test split.
$py "$tools/fashion_mnist_folder.py" png --train-per-class 0 --val-per-class 50 >/dev/null
$py "$tools/fashion_mnist_folder.py" jpg --train-per-class 0 --val-per-class 50 --format jpeg >/dev/null
"$bin" predict --checkpoint "$ckpt" png/val --logits -o png.csv >png.log 2>&1 \
  && grep -q "500 images (lenet on cpu)" png.log || bad "png folder: $(cat png.log)"
"$bin" predict --checkpoint "$ckpt" jpg/val --top-k 3 -o jpg.jsonl >jpg.log 2>&1 \
  || bad "jpeg folder: $(cat jpg.log)"
check=$($py - <<'EOF'
import csv, json
split = {int(r["source"].rsplit(":", 1)[1]): r for r in csv.DictReader(open("split.csv"))}
worst, same, png_right, n = 0.0, 0, 0, 0
for r in csv.DictReader(open("png.csv")):
    idx, truth = int(r["source"].rsplit("/", 1)[1].split(".")[0]), int(r["source"].split("/")[-2].split("-")[0])
    s = split[idx]
    a = [float(r[f"logit{c}"]) for c in range(10)]
    b = [float(s[f"logit{c}"]) for c in range(10)]
    worst = max(worst, max(abs(x - y) for x, y in zip(a, b)) / max(abs(y) for y in b))
    same += r["label1"] == s["label1"]
    png_right += int(r["label1"]) == truth
    n += 1
jpg = [json.loads(line) for line in open("jpg.jsonl")]
jpg_right = sum(j["top"][0]["label"] == int(j["source"].split("/")[-2].split("-")[0]) for j in jpg)
shape_ok = all(len(j["top"]) == 3 and j["top"][0]["prob"] >= j["top"][1]["prob"] for j in jpg)
print(n, same, f"{worst:.2e}", png_right, len(jpg), jpg_right, shape_ok)
EOF
)
read -r n same worst png_right njpg jpg_right shape_ok <<<"$check"
[ "$n" = 500 ] && [ "$same" = 500 ] && $py -c "import sys; sys.exit(0 if $worst <= 1e-5 else 1)" \
  && ok "500 PNG files: the IDX images' logits (max relative difference $worst), same top-1" \
  || bad "png vs idx: $check"
[ "$njpg" = 500 ] && [ "$shape_ok" = True ] \
  && $py -c "import sys; sys.exit(0 if abs($jpg_right - $png_right) <= 15 else 1)" \
  && ok "500 JPEG files: $jpg_right right (PNG: $png_right), top-3 sorted, JSON lines" \
  || bad "jpeg: $check"
head -1 png.csv | grep -q "^source,label1,class1,prob1,label2" && grep -q ",Ankle boot," png.csv \
  && ok "CSV header and Fashion-MNIST's class names" || bad "csv: $(head -2 png.csv)"

# 3. A checkpoint trained on an image folder: 3 channels, the evaluation crop, classes.txt.
$py "$tools/fashion_mnist_folder.py" folder --classes 0,7,9 --train-per-class 40 --val-per-class 10 >/dev/null
"$bin" --model lenet --dataset imagefolder --data-dir folder --resize 28 --augment none --epochs 1 \
  --batch-size 20 --device cpu --checkpoint-dir fck --progress off >ftrain.log 2>&1 \
  || bad "image folder training: $(cat ftrain.log)"
fckpt=$(ls fck/ckpt-*.h5 | tail -1)
out=$("$bin" predict --checkpoint "$fckpt" folder/val/7-sneaker/00009.png --top-k 9 2>&1)
grep -q "^folder/val/7-sneaker/00009.png,[0-2],[079]-[a-z-]*,[0-9.e-]*,[0-2],.*,[0-2],[079]-" <<<"$out" \
  && ok "image-folder checkpoint: top-k capped at its 3 classes, named from classes.txt" \
  || bad "image folder predict: $out"
pack=$(dirname "$bin")/alexnet-pack
if "$pack" folder packed >pack.log 2>&1; then
  out=$("$bin" predict --checkpoint "$fckpt" packed 2>&1)
  [ "$(grep -c '^packed:test:' <<<"$out")" -eq 30 ] \
    && grep -q "30 images; top-1 accuracy" <<<"$out" \
    && ok "a packed shard set: its 30 val images, with their labels" || bad "packed: $out"
else
  bad "alexnet-pack: $(cat pack.log)"
fi

# 4. A damaged image: stop, naming it, no output file; or skip it with a warning.
cp -r png/val/0-tshirt badset
head -c 100 png/val/0-tshirt/00019.png >badset/00019.png
out=$("$bin" predict --checkpoint "$ckpt" badset -o bad.csv 2>&1)
code=$?
[ $code -eq 1 ] && [ ! -e bad.csv ] && [ -z "$(ls -A . | grep 'bad.csv')" ] \
  && grep -q "^alexnet predict: error: badset/00019.png: .*--on-bad-image skip" <<<"$out" \
  && ok "a truncated PNG: exit 1, named, no output file" || bad "bad image ($code): $out"
out=$("$bin" predict --checkpoint "$ckpt" badset -o bad.csv --on-bad-image skip 2>&1)
[ $? -eq 0 ] && [ "$(($(wc -l <bad.csv) - 1))" -eq 49 ] && grep -q "warning: skipped: badset/00019.png" <<<"$out" \
  && grep -q "49 images, 1 skipped" <<<"$out" && ok "--on-bad-image skip: 49 rows, one warning" \
  || bad "skip: $out"

# 5. Bad options and inputs: one line each, exit 2 (usage) or 1.
expect() {  # CODE REGEX ARGS...
  local code=$1 re=$2
  shift 2
  local out
  out=$("$bin" predict "$@" 2>&1)
  local got=$?
  [ $got -eq "$code" ] && [ "$(wc -l <<<"$out")" -eq 1 ] && grep -qE "$re" <<<"$out" \
    && ok "predict $* -> $code" || bad "predict $* -> $got: $out"
}
expect 2 "^alexnet predict: error: predict needs --checkpoint FILE" png/val
expect 2 "^alexnet predict: error: predict needs images" --checkpoint "$ckpt"
expect 2 "^alexnet predict: error: --top-k must be at least 1, got 0" --checkpoint "$ckpt" --top-k 0 png/val
expect 2 "^alexnet predict: error: --format must be csv or jsonl, got 'xml'" --checkpoint "$ckpt" --format xml png/val
expect 2 "unrecognised option '--epochs'" --checkpoint "$ckpt" --epochs 3 png/val
expect 1 "^alexnet predict: error: nowhere: no such file or folder" --checkpoint "$ckpt" nowhere
expect 1 "^alexnet predict: error: missing.h5: " --checkpoint missing.h5 png/val
printf 'a\nb\n' >two.txt
expect 1 "^alexnet predict: error: two.txt: 2 class names, but .* has 10 classes" --checkpoint "$ckpt" --classes two.txt png/val
if ! nvidia-smi -L >/dev/null 2>&1; then
  expect 2 "^alexnet predict: error: --device cuda: " --checkpoint "$ckpt" --device cuda png/val
fi
out=$("${mpi[@]}" -n 2 "$bin" predict --checkpoint "$ckpt" png/val 2>&1)
code=$?
[ $code -ne 0 ] && [ "$(grep -c 'predict runs as one process' <<<"$out")" -eq 2 ] \
  && ok "under mpiexec -n 2: refused on both ranks (exit $code)" || bad "mpiexec: $code $out"

echo "$pass passed, $fails failed"
[ "$fails" -eq 0 ]
