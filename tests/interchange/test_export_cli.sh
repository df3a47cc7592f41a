#!/usr/bin/env bash
# alexnet-export as a user meets it: exit codes (2: the command line, 1: anything else), the
# one-line messages for bad input, and that a failed export leaves no file behind and an
# existing output untouched.
#   test_export_cli.sh PATH/TO/alexnet-export PATH/TO/distnet_onnx_check [PYTHON]
# PYTHON (with h5py) finds a tensor's bytes for the damaged-tensor case; default python3.
set -u
bin=$1 driver=$2 python=${3:-python3}
here=$(cd "$(dirname "$0")" && pwd)
fails=0
passes=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp" || exit 1

ok() { echo "ok: $*"; passes=$((passes + 1)); }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }

# expect CODE PATTERN ARGS... : run alexnet-export ARGS, check the exit code and that its output
# matches PATTERN; an error must be exactly one line.
expect() {
  local code=$1 pattern=$2
  shift 2
  local out rc
  out=$("$bin" "$@" 2>&1)
  rc=$?
  if [ "$rc" -ne "$code" ]; then
    bad "alexnet-export $* exited $rc, expected $code; output: $out"
  elif ! grep -qE -- "$pattern" <<<"$out"; then
    bad "alexnet-export $* printed: $out (expected /$pattern/)"
  elif [ "$code" -ne 0 ] && [ "$(wc -l <<<"$out")" -ne 1 ]; then
    bad "alexnet-export $* printed more than one line: $out"
  else
    ok "alexnet-export $*"
  fi
}

"$driver" make --model lenet --input 1,28,28 --classes 10 --out lenet.h5 || exit 1

# Success, and what the command says.
expect 0 "^out.onnx: lenet, opset 13, input N x 1x28x28, logits N x 10, [0-9]+ bytes$" \
  --checkpoint lenet.h5 --output out.onnx
[ -s out.onnx ] && ok "out.onnx written" || bad "out.onnx missing"
expect 0 "^fixed.onnx: lenet, opset 17, input 4 x 1x28x28, logits 4 x 10, " \
  --checkpoint lenet.h5 --output fixed.onnx --opset 17 --batch 4
expect 0 "--opset arg \(=13\) +the ONNX opset to write, 11 to 17" --help
expect 0 "^alexnet-export \(distnet\) [0-9.]+$" --version

# The command line: exit 2.
expect 2 "^alexnet-export: error: give the checkpoint to export: --checkpoint CKPT.h5$"
expect 2 "^alexnet-export: error: give the file to write: --output MODEL.onnx$" --checkpoint lenet.h5
expect 2 "^alexnet-export: error: --opset must be between 11 and 17, got 10$" \
  --checkpoint lenet.h5 --output x.onnx --opset 10
expect 2 "^alexnet-export: error: --opset must be between 11 and 17, got 18$" \
  --checkpoint lenet.h5 --output x.onnx --opset 18
expect 2 "^alexnet-export: error: .*opset" --checkpoint lenet.h5 --output x.onnx --opset thirteen
expect 2 "^alexnet-export: error: --batch must be a positive number or dynamic, got '0'$" \
  --checkpoint lenet.h5 --output x.onnx --batch 0
expect 2 "^alexnet-export: error: --batch must be a positive number or dynamic, got '8x'$" \
  --checkpoint lenet.h5 --output x.onnx --batch 8x
expect 2 "^alexnet-export: error: --output lenet.h5 is the checkpoint itself; give another file$" \
  --checkpoint lenet.h5 --output lenet.h5
expect 2 "^alexnet-export: error: --output \. is a directory; give the file to write$" \
  --checkpoint lenet.h5 --output .
expect 2 "^alexnet-export: error: unrecogni[sz]ed option '--frobnicate'$" --frobnicate

# Bad input: exit 1, nothing written.
expect 1 "^alexnet-export: error: missing.h5: " --checkpoint missing.h5 --output x.onnx
head -c 4096 lenet.h5 >truncated.h5
expect 1 "^alexnet-export: error: truncated.h5: " --checkpoint truncated.h5 --output x.onnx
echo "not a checkpoint" >text.h5
expect 1 "^alexnet-export: error: text.h5: " --checkpoint text.h5 --output x.onnx
# A changed byte inside a weight tensor: its checksum refuses it (h5py finds where it lies).
cp lenet.h5 flipped.h5
if at=$("$python" -c 'import h5py, sys
d = h5py.File(sys.argv[1], "r")["params/dense1/weight"]
print(d.id.get_chunk_info(0).byte_offset + 1000 if d.chunks else d.id.get_offset() + 1000)' \
  flipped.h5 2>/dev/null); then
  printf '\x55' | dd of=flipped.h5 bs=1 seek="$at" conv=notrunc status=none
  expect 1 "^alexnet-export: error: flipped.h5: .*checksum" --checkpoint flipped.h5 --output x.onnx
else
  echo "skipped: the damaged-tensor case ($python with h5py is needed to find a tensor's bytes)"
fi
expect 1 "^alexnet-export: error: no/such/dir/x.onnx: cannot write: No such file or directory$" \
  --checkpoint lenet.h5 --output no/such/dir/x.onnx
[ -e x.onnx ] && bad "x.onnx was left behind by a failed export" || ok "no x.onnx after failures"

# An existing output is left as it was when the export fails.
cp out.onnx kept.onnx
expect 1 "^alexnet-export: error: truncated.h5: " --checkpoint truncated.h5 --output kept.onnx
cmp -s out.onnx kept.onnx && ok "kept.onnx untouched" || bad "kept.onnx changed by a failed export"

# torchvision's AlexNet at 96x96: its adaptive pool enlarges 2x2 to 6x6, which ONNX cannot say.
"$driver" make --model alexnet-torchvision --input 3,96,96 --classes 10 --out tv96.h5 || exit 1
expect 1 "^alexnet-export: error: models/alexnet-torchvision.yaml:[0-9]+: layer avgpool \(adaptive_avg_pool\): adaptive average pooling from 2x2 to 6x6 has windows of unequal size" \
  --checkpoint tv96.h5 --output tv96.onnx
[ -e tv96.onnx ] && bad "tv96.onnx written" || ok "no tv96.onnx"

# A checkpoint of a definition file that has since gone.
cp "$here/defs/every-op.yaml" gone.yaml
"$driver" make --model gone.yaml --input 1,32,32 --classes 10 --out gone.h5 || exit 1
expect 0 "^gone.onnx: gone.yaml, opset 13" --checkpoint gone.h5 --output gone.onnx
rm gone.yaml
expect 1 "^alexnet-export: error: .*gone.yaml" --checkpoint gone.h5 --output gone2.onnx

# classes.txt beside the checkpoint must name every class.
mkdir named
cp lenet.h5 named/
printf 'a\nb\n' >named/classes.txt
expect 1 "^alexnet-export: error: named/classes.txt: 2 class names, but the checkpoint has 10 classes" \
  --checkpoint named/lenet.h5 --output named.onnx
seq 0 9 >named/classes.txt
expect 0 "^named.onnx: lenet" --checkpoint named/lenet.h5 --output named.onnx

# The preprocessing the metadata describes follows the data the model was trained on.
grep -qa "half-pixel centres" out.onnx && ok "out.onnx: Fashion-MNIST's resize described" \
  || bad "out.onnx: no description of the bilinear resize"
"$driver" make --model lenet --input 3,28,28 --classes 10 --dataset imagefolder --mean 0.45 \
  --std 0.225 --out folder.h5 || exit 1
expect 0 "^folder.onnx: lenet, opset 13, input N x 3x28x28" --checkpoint folder.h5 --output folder.onnx
grep -qa "centre crop of S x S" folder.onnx && ok "folder.onnx: the evaluation crop described" \
  || bad "folder.onnx: no description of the evaluation crop"

left=$(find . -name '.*tmp-*')
[ -z "$left" ] && ok "no temporary files left" || bad "temporary files left: $left"

echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]
