#!/usr/bin/env bash
# Peak memory against --accumulate: one process in benchmark mode at the same global batch with
# K = 1, 2, 4 (and more if given), its peak resident set from /usr/bin/time (on the CPU backend
# the activations live in host memory). Prints one line per K; the figures are the machine's.
#   bench/accumulate_memory.sh BUILD_DIR [MODEL [RESIZE [BATCH [K...]]]]
# Defaults: alexnet at 224x224, a global batch of 64, K = 1 2 4.
set -eu
build=${1:?usage: accumulate_memory.sh BUILD_DIR [MODEL [RESIZE [BATCH [K...]]]]}
model=${2:-alexnet}
resize=${3:-224}
batch=${4:-64}
shift $(($# < 4 ? $# : 4))
ks=("$@")
[ ${#ks[@]} -gt 0 ] || ks=(1 2 4)
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores, $(($(getconf _PHYS_PAGES) * $(getconf PAGESIZE) >> 20)) MiB; $(date -u +%F)"
echo "model $model at ${resize}x$resize, global batch $batch, one process, --benchmark --steps 1 --warmup-steps 1"
printf '%-4s %-12s %-16s %s\n' K micro-batch "peak RSS (MiB)" "images/s"
for k in "${ks[@]}"; do
  log=$(mktemp)
  /usr/bin/time -f 'maxrss_kb %M' "$build/alexnet" --benchmark --model "$model" --resize "$resize" \
    --batch-size "$batch" --accumulate "$k" --steps 1 --warmup-steps 1 --workers 1 --progress off \
    >"$log" 2>&1 || { cat "$log"; exit 1; }
  rss=$(awk '/^maxrss_kb/ {print int($2 / 1024)}' "$log")
  ips=$(sed -nE 's|^ *images/s: ([0-9.]+) total.*|\1|p' "$log" | head -1)
  printf '%-4s %-12s %-16s %s\n' "$k" "$(((batch + k - 1) / k))" "$rss" "${ips:-?}"
  rm -f "$log"
done
