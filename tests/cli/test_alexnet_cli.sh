#!/usr/bin/env bash
# The alexnet command as a user meets it: exit codes and the one-line messages for bad input.
#   test_alexnet_cli.sh PATH/TO/alexnet
set -u
bin=$1
fails=0
passes=0

# expect CODE PATTERN ARGS... : run alexnet ARGS, check the exit code and that stderr+stdout
# match PATTERN; for errors also check the message is exactly one line.
expect() {
  local code=$1 pattern=$2
  shift 2
  local out rc
  out=$("$bin" "$@" 2>&1)
  rc=$?
  if [ "$rc" -ne "$code" ]; then
    echo "FAIL: alexnet $* exited $rc, expected $code; output: $out"
    fails=$((fails + 1))
  elif ! grep -qE -- "$pattern" <<<"$out"; then
    echo "FAIL: alexnet $* printed: $out (expected /$pattern/)"
    fails=$((fails + 1))
  elif [ "$code" -ne 0 ] && [ "$(wc -l <<<"$out")" -ne 1 ]; then
    echo "FAIL: alexnet $* printed more than one line: $out"
    fails=$((fails + 1))
  else
    echo "ok: alexnet $*"
    passes=$((passes + 1))
  fi
}

expect 0 "total parameters: 46,764,746" --print-shapes
expect 0 "total parameters: 431,080" --print-shapes --model lenet --resize 28
expect 0 "total parameters: 61,100,840" --print-shapes --model alexnet-torchvision --dataset synthetic --synthetic-shape 3x224x224 --synthetic-classes 1000
# torchvision's AlexNet trains at a small input too (its adaptive pool enlarges 1x1 to 6x6), and
# 1000 classes bring the top-5 accuracy into the epoch line.
expect 0 "^epoch 1, loss 6\.9[0-9]+, train acc [0-9.]+, test acc [0-9.]+, top-5 [0-9.]+, " --model alexnet-torchvision --dataset synthetic --synthetic-shape 3x64x64 --synthetic-classes 1000 --resize 0 --train-limit 64 --test-limit 32 --batch-size 32 --epochs 1 --progress off
expect 0 "Usage: alexnet" --help
expect 0 "distnet [0-9.]+" --version
expect 2 "^alexnet: error: unknown model 'vgg'; expected one of: alexnet, alexnet-bn, alexnet-nopad, alexnet-torchvision, googlenet, lenet, nin, resnet18, resnet18-torchvision, vgg11$" --print-shapes --model vgg
expect 2 "^alexnet: error: model 'alexnet' does not fit input 1x28x28: .* smallest square input it accepts is 67x67" --print-shapes --resize 28
expect 2 "^alexnet: error: number of classes must be at least 1, got 0$" --print-shapes --dataset synthetic --synthetic-classes 0
expect 2 "^alexnet: error: .*unrecognised option '--frobnicate'|unrecognized option '--frobnicate'" --frobnicate
expect 2 "^alexnet: error: --resize must be auto or a size >= 0 \(0 keeps the dataset's size\), got 'abc'$" --print-shapes --resize abc
expect 2 "^alexnet: error: --resize must be auto or a size >= 0 \(0 keeps the dataset's size\), got '-1'$" --print-shapes --resize -1
# Each model's natural input unless --resize says otherwise (LeNet is not built at 224).
expect 0 "^model lenet, input 1x28x28, 10 classes" --print-shapes --model lenet
expect 0 "^model alexnet, input 1x224x224, 10 classes" --print-shapes
expect 0 "^model lenet, input 1x32x32, 10 classes" --print-shapes --model lenet --resize 32
expect 0 "^resize = 28$" --model lenet --print-config
# No guessing from prefixes: a typo is an error, on the command line and in config files.
expect 2 "^alexnet: error: unrecogni[sz]ed option '--epoch'$" --epoch 2
expect 2 "^alexnet: error: unrecogni[sz]ed option '--batch'$" --batch 64
# Readable defaults in --help.
expect 0 "--lr-gamma arg \(=0.1\) " --help
expect 2 "^alexnet: error: --math must be one of" --math fp16
expect 2 "^alexnet: error: --cudnn-algo must be one of" --cudnn-algo fastest
expect 2 "^alexnet: error: --comm must be one of" --comm gloo
expect 2 "^alexnet: error: --comm nccl needs --device cuda" --comm nccl --device cpu
expect 2 "^alexnet: error: --comm none .* is only for --benchmark" --comm none
expect 2 "^alexnet: error: --overlap must be one of" --overlap maybe
expect 2 "^alexnet: error: --grad-compression must be one of" --grad-compression zstd
expect 2 "^alexnet: error: --device cuda: " --device cuda --model lenet --dataset synthetic --resize 0 --epochs 1
expect 2 "^alexnet: error: --synthetic-shape must be CxHxW with positive sizes \(e.g. 1x28x28\), got '0x28x28'$" --print-shapes --dataset synthetic --synthetic-shape 0x28x28
expect 2 "^alexnet: error: --dropout must be in \[0, 1\), got 1$" --print-shapes --dropout 1
expect 0 "model alexnet-nopad, input 3x224x224, 10 classes" --print-shapes --model alexnet-nopad --dataset cifar10


# Issue 4: options, config files and precedence (defaults < --config file < command line).
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf 'lr = 0.5\nepochs = 3\nmodel = lenet\n' >"$tmp/run.ini"
printf 'lr 0.1\n' >"$tmp/syntax.ini"
printf 'frobnicate = 3\n' >"$tmp/unknown.ini"
printf 'epoch = 3\n' >"$tmp/prefix.ini"
expect 0 "^lr = 0.5$" --config "$tmp/run.ini" --print-config
expect 0 "^epochs = 4$" --config "$tmp/run.ini" --epochs 4 --print-config
# Every shipped config is valid (image folders need a directory, which --print-config never reads).
for ini in "$(dirname "$0")"/../../configs/*.ini; do
  expect 0 "^model = " --config "$ini" --data-dir "$tmp" --print-config
done
expect 0 "^lr-steps = 30,60$" --config "$(dirname "$0")/../../configs/imagenet-alexnet.ini" --data-dir "$tmp" --print-config
expect 0 "^model = alexnet$" --print-config
expect 2 "^alexnet: error: --batch-size must be in \[1, 2147483647\], got 0$" --batch-size 0
expect 2 "^alexnet: error: --lr must be > 0, got 0$" --lr 0
expect 2 "^alexnet: error: --lr must be > 0, got -1$" --lr -1
expect 2 "^alexnet: error: --epochs must be at least 1, got 0$" --epochs 0
expect 2 "^alexnet: error: unknown dataset 'imagenet'; expected one of: fashion-mnist, mnist, cifar10, synthetic, imagefolder, packed$" --dataset imagenet
expect 2 "^alexnet: error: unknown model 'vgg'" --model vgg
expect 2 "^alexnet: error: config file '/nonexistent.ini' does not exist or is not a file$" --config /nonexistent.ini
expect 2 "^alexnet: error: config file '.*syntax.ini': .*invalid line 'lr 0.1'$" --config "$tmp/syntax.ini"
expect 2 "^alexnet: error: unrecogni[sz]ed option 'frobnicate' \(in .*unknown.ini or on the command line\)$" --config "$tmp/unknown.ini"
expect 2 "^alexnet: error: unrecogni[sz]ed option 'epoch' \(in .*prefix.ini or on the command line\)$" --config "$tmp/prefix.ini"
expect 2 "^alexnet: error: option '--lr' cannot be specified more than once$" --lr 0.1 --lr 0.2
expect 2 "^alexnet: error: --momentum must be in \[0, 1\), got 1$" --momentum 1
expect 2 "^alexnet: error: --label-smoothing must be in \[0, 1\), got 1$" --label-smoothing 1
expect 2 "^alexnet: error: --label-smoothing must be in \[0, 1\), got -0.1$" --label-smoothing -0.1
expect 2 "^alexnet: error: --clip-grad-norm must be >= 0 \(0: off\), got -1$" --clip-grad-norm -1
expect 2 "^alexnet: error: --clip-grad-norm must be >= 0 \(0: off\), got inf$" --clip-grad-norm inf
expect 0 "--label-smoothing arg \(=0\) +training loss against" --help
expect 0 "--clip-grad-norm arg \(=0\) +scale the summed gradient" --help
expect 0 "^label-smoothing = 0.1$" --label-smoothing 0.1 --print-config
expect 0 "^clip-grad-norm = 0$" --print-config
expect 2 "^alexnet: error: --device must be one of auto, cpu, cuda, got 'tpu'$" --device tpu
expect 2 "^alexnet: error: --lr-schedule step needs --lr-steps$" --lr-schedule step
# --sync-bn: in --help, --print-config and config files; --print-shapes names the layers.
expect 0 "--sync-bn +batch-norm in training normalises" --help
expect 0 "^sync-bn = false$" --print-config
expect 0 "^sync-bn = true$" --sync-bn --print-config
printf 'sync-bn = true\nmodel = alexnet-bn\n' >"$tmp/sync.ini"
expect 0 "^sync-bn = true$" --config "$tmp/sync.ini" --print-config
expect 0 "^bn5 +batch_norm sync \+relu +256x12x12 " --config "$tmp/sync.ini" --print-shapes --resize 224
expect 0 "^bn5 +batch_norm \+relu +256x12x12 " --model alexnet-bn --print-shapes --resize 224

echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]
