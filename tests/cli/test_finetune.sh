#!/usr/bin/env bash
# Fine-tuning (docs/training.md#fine-tuning), on real Fashion-MNIST images: a LeNet trained on six
# classes (T-shirt .. sandal), fine-tuned with --init-from on the four others (shirt, sneaker,
# bag, ankle boot) from 25 images per class, beats the same network trained from scratch on the
# same images with the same budget; its classifier is re-initialised for 4 classes and named;
# --freeze-through leaves the frozen layers' weights bit for bit as loaded (on 2 ranks);
# --lr-mult 0 does the same for a pattern; bad names, patterns and checkpoints get one line.
#   test_finetune.sh PATH/TO/alexnet MPIEXEC [MPIEXEC FLAGS...]
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

$py "$tools/fashion_mnist_folder.py" six --classes 0,1,2,3,4,5 --train-per-class 500 \
  --val-per-class 100 >/dev/null
$py "$tools/fashion_mnist_folder.py" four --classes 6,7,8,9 --train-per-class 25 \
  --val-per-class 1000 >/dev/null
norm=(--normalize-mean 0.29,0.29,0.29 --normalize-std 0.35,0.35,0.35)
common=(--dataset imagefolder --augment none --momentum 0.9 --lr 0.01
  "${norm[@]}" --device cpu --progress off)
"$bin" "${common[@]}" --model lenet --resize 28 --data-dir six --epochs 4 --batch-size 64 --checkpoint-dir pre \
  >pre.log 2>&1 || { cat pre.log; exit 1; }
pre=$(ls pre/ckpt-*.h5 | tail -1)
pre_acc=$(sed -n 's/^epoch 4, .*test acc \([0-9.]*\).*/\1/p' pre.log)
echo "pretrained on six classes: test acc $pre_acc"

acc() { sed -n 's/^epoch 10, .*test acc \([0-9.]*\).*/\1/p' "$1"; }
# The same budget: 10 epochs over the 100 images, batch 20, the same seed.
target=("${common[@]}" --data-dir four --batch-size 20)
lenet=(--model lenet --resize 28)
"$bin" "${target[@]}" "${lenet[@]}" --epochs 10 --init-from "$pre" --checkpoint-dir ft >ft.log 2>&1 || bad "fine-tune: $(cat ft.log)"
"$bin" "${target[@]}" "${lenet[@]}" --epochs 10 >scratch.log 2>&1 || bad "scratch: $(cat scratch.log)"
ft=$(acc ft.log)
scratch=$(acc scratch.log)
echo "four new classes, 25 images each, 10 epochs: fine-tuned $ft, from scratch $scratch"
$py -c "import sys; sys.exit(0 if $ft >= $scratch + 0.02 else 1)" \
  && ok "fine-tuned beats from scratch: test acc $ft vs $scratch" || bad "fine-tuned $ft, scratch $scratch"
grep -q "^init-from $pre: weights of lenet loaded; dense2 (weight 4x500, bias 4) re-initialised for 4 classes (the checkpoint has 6)$" ft.log \
  && ok "the re-initialised classifier is named" || bad "$(grep init-from ft.log)"

# --freeze-through on 2 ranks: conv1 and conv2 stay as loaded, bit for bit; dense1 moves.
"${mpi[@]}" -n 2 "$bin" "${target[@]}" "${lenet[@]}" --epochs 2 --init-from "$pre" --freeze-through conv2 \
  --checkpoint-dir frozen >frozen.log 2>&1 || bad "frozen: $(cat frozen.log)"
[ "$(grep -c '^fine-tuning: conv1 .. conv2 frozen (26570 parameters)$' frozen.log)" -eq 1 ] \
  && ok "the frozen layers are said once" || bad "$(grep -i frozen frozen.log)"
same() {  # A B TENSOR -> prints equal / differs
  $py - "$1" "$2" "$3" <<'EOF'
import sys, h5py, numpy as np
a, b = (h5py.File(p, "r")["params/" + sys.argv[3]][()] for p in sys.argv[1:3])
print("equal" if a.shape == b.shape and np.array_equal(a, b) else "differs")
EOF
}
last=$(ls frozen/ckpt-*.h5 | tail -1)
r="$(same "$pre" "$last" conv1/weight) $(same "$pre" "$last" conv2/bias) $(same "$pre" "$last" dense1/weight)"
[ "$r" = "equal equal differs" ] && ok "--freeze-through conv2: conv1, conv2 as loaded; dense1 trained" \
  || bad "freeze: $r"
"$bin" "${target[@]}" "${lenet[@]}" --epochs 1 --init-from "$pre" --lr-mult 'conv*=0,dense2=10' \
  --checkpoint-dir mult >mult.log 2>&1 || bad "lr-mult: $(cat mult.log)"
last=$(ls mult/ckpt-*.h5 | tail -1)
r="$(same "$pre" "$last" conv1/weight) $(same "$pre" "$last" conv2/weight) $(same "$pre" "$last" dense1/bias)"
[ "$r" = "equal equal differs" ] && grep -q "^fine-tuning: conv\* lr x 0, dense2 lr x 10$" mult.log \
  && ok "--lr-mult 'conv*=0,dense2=10'" || bad "lr-mult: $r $(grep fine-tuning mult.log)"
out=$("$bin" "${target[@]}" "${lenet[@]}" --epochs 3 --resume auto --checkpoint-dir frozen --freeze-through conv1 2>&1)
[ $? -eq 2 ] && grep -q "cannot resume with freeze-through = conv1: the run was started with freeze-through = conv2" <<<"$out" \
  && ok "resuming with another --freeze-through is refused" || bad "resume: $out"

# Bad names, patterns and checkpoints: one line, exit 2 (usage) or 1.
expect() {  # CODE REGEX ARGS...
  local code=$1 re=$2
  shift 2
  local out
  out=$("$bin" "${target[@]}" --epochs 1 "$@" 2>&1)
  local got=$?
  [ $got -eq "$code" ] && [ "$(grep -c 'error' <<<"$out")" -eq 1 ] && grep -qE "$re" <<<"$out" \
    && ok "$* -> $code" || bad "$* -> $got: $out"
}
expect 2 "error: --freeze-through conv9: model lenet has no layer of that name \(its layers with parameters: conv1, conv2, dense1, dense2\)" "${lenet[@]}" --freeze-through conv9
expect 2 "error: --lr-mult: 'dense1' is not PATTERN=FACTOR" "${lenet[@]}" --lr-mult dense1
expect 2 "error: --lr-mult: 'dense1=-1' is not PATTERN=FACTOR" "${lenet[@]}" --lr-mult dense1=-1
expect 2 "error: --lr-mult res\*=2: no layer of model lenet with parameters matches 'res\*'" "${lenet[@]}" --lr-mult 'res*=2'
expect 2 "error: .*: checkpoint of model 'lenet', this run trains 'nin' \(--init-from needs the same model" --init-from "$pre" --model nin --resize 96
expect 1 "error: .*dataset /params/dense1/weight has shape 500x800, expected 500x1250 \(the checkpoint was trained on input 3x28x28, this run has 3x32x32\)" --init-from "$pre" --model lenet --resize 32

echo "$pass passed, $fails failed"
[ "$fails" -eq 0 ]
