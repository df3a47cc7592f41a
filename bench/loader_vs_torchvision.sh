#!/usr/bin/env bash
# distnet's input pipeline against torchvision's on the same image folder and core counts:
# interleaved rounds of distnet_loader_bench and bench/torchvision_loader_bench.py, 1 core (both
# pinned to CPU 0 with taskset) and the whole node (threads / workers = cores), then the ratio of
# the medians over all runs.
#   bench/loader_vs_torchvision.sh BUILD_DIR DATA_DIR [ROUNDS [IMAGES [OUT_DIR]]]
# DATA_DIR: an image folder, e.g. build/tests/distnet_make_photo_folder /tmp/photos 100 5
set -eu
build=${1:?usage: loader_vs_torchvision.sh BUILD_DIR DATA_DIR [ROUNDS [IMAGES [OUT_DIR]]]}
data=${2:?usage: loader_vs_torchvision.sh BUILD_DIR DATA_DIR [ROUNDS [IMAGES [OUT_DIR]]]}
rounds=${3:-3}
images=${4:-512}
out=${5:-$(mktemp -d)}
here=$(cd "$(dirname "$0")" && pwd)
cores=$(nproc)
mkdir -p "$out"
: >"$out/distnet.jsonl"
: >"$out/torchvision.jsonl"
pin="taskset -c 0"
command -v taskset >/dev/null || pin=""
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $cores cores; $(date -u +%F)"
echo "data: $data; $rounds rounds of 1 timed run of $images images each; outputs in $out"
for r in $(seq "$rounds"); do
  for c in 1 "$cores"; do
    p=""
    [ "$c" = 1 ] && p=$pin
    $p "$build/distnet_loader_bench" --dataset imagefolder --data-dir "$data" --cores "$c" \
      --images "$images" --repeats 1 | tee -a "$out/distnet.jsonl" | grep '^distnet '
    $p python3 "$here/torchvision_loader_bench.py" run --data-dir "$data" --cores "$c" \
      --images "$images" --repeats 1 | tee -a "$out/torchvision.jsonl" | grep '^torchvision '
    [ "$c" = "$cores" ] && break  # a 1-core machine: one count
  done
done
python3 "$here/torchvision_loader_bench.py" ratio --distnet "$out/distnet.jsonl" \
  --torchvision "$out/torchvision.jsonl"
