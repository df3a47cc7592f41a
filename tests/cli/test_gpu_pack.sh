#!/usr/bin/env bash
# launch/gpu-pack: what one validation window carries to the GPU node (the bundle with the GPU
# tests as one tarball, Fashion-MNIST's gz files) is made, usable, and small enough: at most
# 60 MiB carried, and with the checkout's own files within the device tool's 64 MiB. The sizes
# are printed either way; over the limit the test fails with them. Leaves the files in CARRY_DIR
# for cli.gpu_check_rehearsal (a CTest fixture). Exit 77 (skipped) without the CUDA build's GPU
# tests or without Fashion-MNIST.
#   test_gpu_pack.sh PATH/TO/alexnet CARRY_DIR
# shellcheck disable=SC2015  # `check && ok ... || bad ...`: ok always succeeds
set -u
build=$(cd "$(dirname "$1")" && pwd -P)
carry=$2
root=$(cd "$(dirname "$0")/../.." && pwd -P)
data=${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
fails=0
pass=0
ok() { echo "ok: $1"; pass=$((pass + 1)); }
bad() { echo "FAIL: $1"; fails=$((fails + 1)); }
mib() { awk -v b="$1" 'BEGIN { printf "%.2f MiB", b / 1048576 }'; }

for t in test_gpu test_nccl_mpi test_gpu_module; do
  [ -x "$build/tests/$t" ] || { echo "skip: no $build/tests/$t (a CUDA build with tests makes it)"; exit 77; }
done
[ -f "$data/train-images-idx3-ubyte.gz" ] || { echo "skip: no Fashion-MNIST gz files in $data"; exit 77; }

# ---- bad inputs ---------------------------------------------------------------------------------
out=$("$root/launch/gpu-pack" 2>&1); rc=$?
[ "$rc" -eq 2 ] && grep -q "^Usage: launch/gpu-pack BUILD_DIR" <<<"$out" && ok "no arguments: usage, exit 2" \
  || bad "no arguments: exit $rc: $out"
out=$("$root/launch/gpu-pack" "$build" "$carry" --data /nonexistent 2>&1); rc=$?
[ "$rc" -eq 2 ] && grep -q "^gpu-pack: error: no /nonexistent/train-images-idx3-ubyte.gz" <<<"$out" \
  && ok "missing data: one line, exit 2" || bad "missing data: exit $rc: $out"
out=$("$root/launch/gpu-pack" "$build" "$carry" --limit-mib lots 2>&1); rc=$?
[ "$rc" -eq 2 ] && ok "a bad --limit-mib: exit 2" || bad "--limit-mib lots: exit $rc: $out"

# ---- the carried files ------------------------------------------------------------------------------
rm -rf "$carry"
out=$("$root/launch/gpu-pack" "$build" "$carry" --data "$data" 2>&1); rc=$?
sed 's/^/  | /' <<<"$out"
[ "$rc" -eq 0 ] && ok "gpu-pack exits 0" || bad "gpu-pack: exit $rc"
[ "$(find "$carry" -type f | wc -l)" -eq 5 ] && ok "5 files: the tarball and 4 gz files" \
  || bad "files in $carry: $(find "$carry" -type f | tr '\n' ' ')"
listing=$(tar -tzf "$carry/distnet.tar.gz" 2>&1)
for f in run env.sh .distnet-bundle bin/alexnet bin/libdistnet_cuda.so bin/test_gpu bin/test_nccl_mpi \
  bin/test_gpu_module lib/libdnnl.so.2; do
  grep -qx "distnet/$f" <<<"$listing" && ok "the tarball has distnet/$f" || bad "no distnet/$f in the tarball"
done
marker=$(tar -xzOf "$carry/distnet.tar.gz" distnet/.distnet-bundle 2>&1)
grep -qE '^glibc 2\.[0-9]+$' <<<"$marker" && ok "the bundle records the glibc it needs ($(grep '^glibc' <<<"$marker"))" \
  || bad "no glibc line in .distnet-bundle: $marker"
for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
  cmp -s "$data/$f.gz" "$carry/fashion-mnist/$f.gz" && ok "fashion-mnist/$f.gz" || bad "fashion-mnist/$f.gz differs or is missing"
done

# ---- sizes, counted here too --------------------------------------------------------------------
tar_b=$(stat -c %s "$carry/distnet.tar.gz" 2>/dev/null || echo 0)
data_b=$(find "$carry/fashion-mnist" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
tree_b=$(cd "$root" && git ls-files -z -co --exclude-standard 2>/dev/null | xargs -0 -r stat -c %s -- 2>/dev/null |
  awk '{ s += $1 } END { print s + 0 }')
echo "sizes: tarball $(mib "$tar_b"), data $(mib "$data_b"), carried $(mib $((tar_b + data_b))); checkout $(mib "$tree_b"), travelling $(mib $((tar_b + data_b + tree_b)))"
[ $((tar_b + data_b)) -le $((60 * 1048576)) ] && ok "carried $(mib $((tar_b + data_b))) <= 60 MiB" \
  || bad "carried $(mib $((tar_b + data_b))) (tarball $(mib "$tar_b") + data $(mib "$data_b")) is over 60 MiB"
[ $((tar_b + data_b + tree_b)) -le $((64 * 1048576)) ] && ok "with the checkout $(mib $((tar_b + data_b + tree_b))) <= 64 MiB" \
  || bad "with the checkout $(mib $((tar_b + data_b + tree_b))) is over the tool's 64 MiB"
grep -qE '^  command: bash launch/gpu-check --tarball |^gpu-pack: ok; note: .* is outside this checkout' <<<"$out" \
  && ok "the device command is printed (or why not)" || bad "no device command printed"

# --check measures again; over a limit (one below what it made) it fails and says by how much.
out=$("$root/launch/gpu-pack" --check "$carry" 2>&1); rc=$?
[ "$rc" -eq 0 ] && grep -q "^  carried in all       $(mib $((tar_b + data_b)))  (limit 60 MiB)$" <<<"$out" \
  && ok "--check: exit 0, the same sizes" || bad "--check: exit $rc: $out"
out=$("$root/launch/gpu-pack" --check "$carry" --limit-mib 10 2>&1); rc=$?
[ "$rc" -eq 1 ] && grep -qE "^gpu-pack: error: the carried files take [0-9.]+ MiB, over the 10 MiB limit \(tarball [0-9.]+ MiB, data [0-9.]+ MiB\)$" <<<"$out" \
  && ok "over --limit-mib: exit 1 with the sizes" || bad "over --limit-mib: exit $rc: $(tail -n 2 <<<"$out")"
out=$("$root/launch/gpu-pack" --check "$carry" --tree-limit-mib 1 2>&1); rc=$?
[ "$rc" -eq 1 ] && grep -qE "^gpu-pack: error: the checkout and the carried files take [0-9.]+ MiB, over the 1 MiB limit$" <<<"$out" \
  && ok "over --tree-limit-mib: exit 1 with the size" || bad "over --tree-limit-mib: exit $rc: $(tail -n 2 <<<"$out")"

echo "$pass passed, $fails failed"
[ "$fails" -eq 0 ]
