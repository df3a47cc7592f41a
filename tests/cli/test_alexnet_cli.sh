#!/usr/bin/env bash
# The alexnet command as a user meets it: exit codes and the one-line messages for bad input.
#   test_alexnet_cli.sh PATH/TO/alexnet
set -u
bin=$1
fails=0

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
  fi
}

expect 0 "total parameters: 46,764,746" --print-shapes
expect 0 "total parameters: 431,080" --print-shapes --model lenet --resize 28
expect 0 "Usage: alexnet" --help
expect 0 "distnet [0-9.]+" --version
expect 2 "^alexnet: error: unknown model 'vgg'; expected one of: alexnet, alexnet-bn, alexnet-nopad, lenet$" --print-shapes --model vgg
expect 2 "^alexnet: error: model 'alexnet' does not fit input 1x28x28: .* smallest square input it accepts is 67x67" --print-shapes --resize 28
expect 2 "^alexnet: error: number of classes must be at least 1, got 0$" --print-shapes --classes 0
expect 2 "^alexnet: error: .*unrecognised option '--frobnicate'|unrecognized option '--frobnicate'" --frobnicate
expect 2 "^alexnet: error: .*invalid" --print-shapes --resize abc
expect 2 "^alexnet: error: --channels must be at least 1, got 0$" --print-shapes --channels 0
expect 2 "^alexnet: error: dropout probability must be in \[0, 1\), got 1" --print-shapes --dropout 1

echo "$((11 - fails)) passed, $fails failed"
[ "$fails" -eq 0 ]
