#!/usr/bin/env bash
# One binary for CPU and GPU nodes: alexnet links no CUDA library and loads the CUDA backend,
# libdistnet_cuda.so, only when a GPU is asked for or may be used (docs/portable.md).
#   (1) ldd alexnet lists no CUDA library (the module does);
#   (2) with the module's CUDA libraries hidden (a private mount namespace, root only), --device
#       auto trains on the CPU and rank 0 prints one note, on 1 and on 2 ranks;
#   (3) there, --device cuda exits 2 on every rank with one line naming the missing library;
#   (4) without the module (DISTNET_CUDA_MODULE elsewhere, or a copy of alexnet alone) the
#       messages say which file is missing; a module of another build is refused;
#   (5) with everything present and no NVIDIA driver, --device cuda still names the driver.
# Exit 77 (CTest: skipped) when every check that could run passed but (2)/(3) could not run.
#   test_cuda_module.sh PATH/TO/alexnet MPIEXEC [MPIEXEC FLAGS...]
# shellcheck disable=SC2015  # `check && ok ... || bad ...`: ok always succeeds
set -u
bin=$1
shift
mpi=("$@")
module=$(dirname "$bin")/libdistnet_cuda.so
fails=0
pass=0
skipped=""
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ok() { echo "ok: $1"; pass=$((pass + 1)); }
bad() { echo "FAIL: $1"; fails=$((fails + 1)); }
cuda_re='lib(cudart|cublas|cublasLt|cudnn[a-z_]*|nccl)\.so[.0-9]*'
run=(--dataset synthetic --model lenet --resize 0 --epochs 1 --train-limit 128 --test-limit 64
  --batch-size 32 --progress off)
epoch1="^epoch 1, .* on 1 rank \(cpu\)$"
epoch2="^epoch 1, .* on 2 ranks \(cpu\)$"

# Runs alexnet on 2 ranks (through hidden() when WRAP=hidden); each rank's exit code goes to
# $tmp/rc.<label>.<rank>. When both ranks fail together, mpiexec sends SIGTERM to a rank still
# running as soon as the other one has left; the wrapper ignores it so that it can still record
# the exit code its alexnet left with (SIGKILL would follow only after a grace period).
two_ranks() {  # LABEL ALEXNET-ARGS...: prints the output, returns mpiexec's exit code
  local label=$1
  shift
  rm -f "$tmp/rc.$label".*
  # shellcheck disable=SC2016  # the inner script's variables are its own
  RCFILE="$tmp/rc.$label" ${WRAP:-} "${mpi[@]}" -n 2 bash -c \
    'trap "" TERM; "$@"; rc=$?; echo "$rc" >"$RCFILE.${OMPI_COMM_WORLD_RANK:-${PMI_RANK:-x}}"; exit "$rc"' \
    rank "$bin" "$@" 2>&1
}
rank_codes() { cat "$tmp/rc.$1".* 2>/dev/null | sort | uniq -c | awk '{ printf "%s x%s ", $2, $1 }'; }

[ -f "$module" ] || { echo "FAIL: no $module next to $bin (build the target distnet_cuda)"; exit 1; }

# ---- (1) the binary links no CUDA library; the module does --------------------------------------
l=$(ldd "$bin" 2>&1)
found=$(grep -oE "$cuda_re" <<<"$l" | sort -u | tr '\n' ' ')
[ -z "$found" ] && ok "ldd alexnet lists no CUDA library" || bad "ldd alexnet lists $found"
needed=$(readelf -d "$bin" | grep -oE "\[$cuda_re\]" | tr '\n' ' ')
[ -z "$needed" ] && ok "alexnet NEEDs no CUDA library" || bad "alexnet NEEDs $needed"
m=$(ldd "$module" 2>&1)
for lib in libcudart libcublas libcudnn libnccl; do
  grep -q "^[[:space:]]*$lib\.so" <<<"$m" && ok "the module links $lib" || bad "the module does not link $lib: $m"
done
funcs=$(nm -D --defined-only "$module" | awk '$2 == "T" { print $3 }' | tr '\n' ' ')
[ "$funcs" = "distnet_cuda_module_v1 " ] && ok "the module exports one function, its entry point" \
  || bad "functions the module exports: $funcs"

# ---- (5) everything present: the module loads; no driver here is reported as today --------------
out=$("$bin" --version 2>&1); rc=$?
[ "$rc" -eq 0 ] && grep -qE "^  gpu backend: CUDA runtime [0-9.]+, driver [a-z0-9.]+, cuDNN .*; module $module$" <<<"$out" \
  && ok "--version: the module is loaded, with versions and path" || bad "--version: exit $rc: $out"
if grep -q "driver none" <<<"$out"; then
  out=$("$bin" --device cuda "${run[@]}" 2>&1); rc=$?
  [ "$rc" -eq 2 ] && [ "$out" = "alexnet: error: --device cuda: the NVIDIA driver is missing or older than CUDA $(sed -n 's/.*CUDA runtime \([0-9.]*\),.*/\1/p' <<<"$("$bin" --version)") that this build needs" ] \
    && ok "no driver: --device cuda exits 2 naming the driver" || bad "no driver: --device cuda: exit $rc: $out"
  out=$("$bin" --device auto "${run[@]}" 2>&1); rc=$?
  [ "$rc" -eq 0 ] && grep -qE "$epoch1" <<<"$out" && ! grep -q "note:" <<<"$out" \
    && ok "no driver: --device auto trains on the CPU without a note (as before)" || bad "no driver: --device auto: exit $rc: $out"
else
  echo "skip: (5) this machine has an NVIDIA driver"
fi

# ---- (4) the module missing ----------------------------------------------------------------------
nope=$tmp/nowhere/libdistnet_cuda.so
out=$(DISTNET_CUDA_MODULE=$nope "$bin" --device cuda "${run[@]}" 2>&1); rc=$?
[ "$rc" -eq 2 ] && [ "$out" = "alexnet: error: --device cuda: the GPU backend cannot be loaded: DISTNET_CUDA_MODULE=$nope: No such file or directory" ] \
  && ok "DISTNET_CUDA_MODULE names no file: --device cuda exits 2 saying so" || bad "DISTNET_CUDA_MODULE=$nope --device cuda: exit $rc: $out"
out=$(DISTNET_CUDA_MODULE=$nope "$bin" --device auto "${run[@]}" 2>&1); rc=$?
n=$(grep -c "^alexnet: note: no GPU backend (DISTNET_CUDA_MODULE=$nope: No such file or directory); running on the CPU$" <<<"$out")
[ "$rc" -eq 0 ] && [ "$n" -eq 1 ] && grep -qE "$epoch1" <<<"$out" \
  && ok "DISTNET_CUDA_MODULE names no file: --device auto trains on the CPU, one note" || bad "DISTNET_CUDA_MODULE=$nope --device auto: exit $rc: $out"
mkdir "$tmp/alone"
cp "$bin" "$tmp/alone/alexnet"
out=$("$tmp/alone/alexnet" --device cuda "${run[@]}" 2>&1); rc=$?
[ "$rc" -eq 2 ] && [ "$out" = "alexnet: error: --device cuda: the GPU backend cannot be loaded: $tmp/alone/libdistnet_cuda.so: No such file or directory" ] \
  && ok "alexnet copied without the module: --device cuda exits 2 naming the module" || bad "alexnet alone --device cuda: exit $rc: $out"
out=$("$tmp/alone/alexnet" --version 2>&1); rc=$?
[ "$rc" -eq 0 ] && grep -qx "  gpu backend: not loaded: $tmp/alone/libdistnet_cuda.so: No such file or directory" <<<"$out" \
  && ok "alexnet copied without the module: --version says so" || bad "alexnet alone --version: exit $rc: $out"
out=$("$tmp/alone/alexnet" --device cpu "${run[@]}" 2>&1); rc=$?
[ "$rc" -eq 0 ] && grep -qE "$epoch1" <<<"$out" && ! grep -q "note:" <<<"$out" \
  && ok "--device cpu never looks for the module" || bad "alexnet alone --device cpu: exit $rc: $out"
# A module of another build (its interface ID changed) is refused, not trusted.
python3 - "$module" "$tmp/other.so" <<'PY'
import re, sys
data = open(sys.argv[1], "rb").read()
ids = set(re.findall(rb"\d+\.\d+\.\d+-[0-9a-f]{16}", data))
assert len(ids) == 1, ids
old = ids.pop()
open(sys.argv[2], "wb").write(data.replace(old, old[:-16] + b"0" * 16))
PY
out=$(DISTNET_CUDA_MODULE=$tmp/other.so "$bin" --device cuda "${run[@]}" 2>&1); rc=$?
[ "$rc" -eq 2 ] && grep -qx "alexnet: error: --device cuda: the GPU backend cannot be loaded: $tmp/other.so comes from another build of distnet (interface [0-9.]*-0\{16\}, this program's is [0-9.]*-[0-9a-f]\{16\}); use the module built with it" <<<"$out" \
  && ok "a module of another build is refused" || bad "module of another build: exit $rc: $out"
echo "junk" >"$tmp/alone/libdistnet_cuda.so"
out=$("$tmp/alone/alexnet" --device cuda "${run[@]}" 2>&1); rc=$?
[ "$rc" -eq 2 ] && grep -qx "alexnet: error: --device cuda: the GPU backend cannot be loaded: $tmp/alone/libdistnet_cuda.so: .*" <<<"$out" \
  && ok "a file that is no module: exit 2, one line" || bad "junk module: exit $rc: $out"

# ---- (2), (3) the module's CUDA libraries hidden ------------------------------------------------
if [ "$(id -u)" -eq 0 ] && unshare -m --propagation private true 2>/dev/null; then
  # The directories the module's CUDA libraries resolve to get an empty tmpfs over them (a system
  # library directory never: there, each library file gets /dev/null over it). Repeated until no
  # CUDA library resolves, as a library can be in several places (/usr/local/lib and the toolkit).
  hide_dirs=()
  hide_files=()
  hidden() {  # CMD...: runs CMD with the hidden files and directories
    # shellcheck disable=SC2016  # the inner script's variables are its own
    unshare -m --propagation private bash -c '
      set -e
      nf=$1; shift
      for ((i = 0; i < nf; i++)); do mount --bind /dev/null "$1"; shift; done
      while [ "$1" != "--" ]; do mount -t tmpfs none "$1"; shift; done
      shift
      exec "$@"' hide "${#hide_files[@]}" "${hide_files[@]}" "${hide_dirs[@]}" -- "$@"
  }
  for _ in 1 2 3 4; do
    resolved=$(hidden ldd "$module" | awk -v re="^$cuda_re\$" '$2 == "=>" && $1 ~ re && $3 != "not" { print $3 }')
    [ -z "$resolved" ] && break
    while read -r path; do
      real=$(readlink -f "$path")
      dir=$(dirname "$real")
      case "$dir" in
        /lib | /lib64 | /usr/lib | /usr/lib64 | /lib/x86_64-linux-gnu | /usr/lib/x86_64-linux-gnu) hide_files+=("$real") ;;
        *) hide_dirs+=("$dir") ;;
      esac
    done <<<"$resolved"
    mapfile -t hide_dirs < <(printf '%s\n' "${hide_dirs[@]}" | sort -u)
  done
  echo "hiding ${hide_dirs[*]} ${hide_files[*]}"
  inside=$(hidden ldd "$module")
  first_missing=$(awk '$2 == "=>" && $3 == "not" { print $1; exit }' <<<"$inside")
  if [ -n "$resolved" ] || [ -z "$first_missing" ]; then
    bad "could not hide the module's CUDA libraries: $(grep -E "$cuda_re" <<<"$inside" | tr '\n' ' ')"
  else
    ok "module's CUDA libraries hidden (the first the loader misses: $first_missing)"
    missing_re="$first_missing: (cannot open shared object file: No such file or directory|file too short)"
    out=$(hidden "$bin" --device auto "${run[@]}" 2>&1); rc=$?
    n=$(grep -cE "^alexnet: note: no GPU backend \($missing_re\); running on the CPU$" <<<"$out")
    [ "$rc" -eq 0 ] && [ "$n" -eq 1 ] && grep -qE "$epoch1" <<<"$out" \
      && ok "(2) --device auto: trains on the CPU, one note naming $first_missing" || bad "(2) --device auto: exit $rc, $n notes: $out"
    out=$(hidden "$bin" --device cpu "${run[@]}" 2>&1); rc=$?
    [ "$rc" -eq 0 ] && grep -qE "$epoch1" <<<"$out" && ! grep -q "note:" <<<"$out" \
      && ok "(2) --device cpu: trains, no note" || bad "(2) --device cpu: exit $rc: $out"
    out=$(hidden "$bin" --device cuda "${run[@]}" 2>&1); rc=$?
    [ "$rc" -eq 2 ] && [ "$(wc -l <<<"$out")" -eq 1 ] \
      && grep -qE "^alexnet: error: --device cuda: the GPU backend cannot be loaded: $missing_re$" <<<"$out" \
      && ok "(3) --device cuda: exit 2, one line naming $first_missing" || bad "(3) --device cuda: exit $rc: $out"
    out=$(hidden "$bin" --version 2>&1); rc=$?
    [ "$rc" -eq 0 ] && grep -qE "^  gpu backend: not loaded: $missing_re$" <<<"$out" \
      && ok "(3) --version names $first_missing" || bad "(3) --version: exit $rc: $out"
    # Only cuDNN missing: the toolkit's directories hold everything else (bound back one by one).
    only_cudnn() {  # CMD...
      # shellcheck disable=SC2016  # the inner script's variables are its own
      unshare -m --propagation private bash -c '
        set -e
        view=$1; nd=$2; shift 2
        for ((i = 0; i < nd; i++)); do
          mkdir -p "$view/$i"; mount --bind "$1" "$view/$i"; mount -t tmpfs none "$1"
          for f in "$view/$i"/lib*.so*; do
            case "${f##*/}" in libcudnn*) continue ;; esac
            touch "$1/${f##*/}"; mount --bind "$(readlink -f "$f")" "$1/${f##*/}"
          done
          shift
        done
        exec "$@"' only "$tmp/view" "${#hide_dirs[@]}" "${hide_dirs[@]}" "$@"
    }
    if [ ${#hide_files[@]} -eq 0 ] && [ -z "$(only_cudnn ldd "$module" | awk '$3 == "not" && $1 !~ /^libcudnn/')" ]; then
      out=$(only_cudnn "$bin" --device cuda "${run[@]}" 2>&1); rc=$?
      [ "$rc" -eq 2 ] && [ "$out" = "alexnet: error: --device cuda: the GPU backend cannot be loaded: libcudnn.so.9: cannot open shared object file: No such file or directory" ] \
        && ok "(3) only cuDNN missing: --device cuda exits 2 naming libcudnn.so.9" || bad "(3) only cuDNN missing: exit $rc: $out"
    else
      echo "skip: (3) only cuDNN missing: the CUDA libraries are in a system directory here"
    fi
    if [ ${#mpi[@]} -gt 0 ]; then
      out=$(WRAP=hidden two_ranks auto --device auto "${run[@]}"); rc=$?
      n=$(grep -cE "^alexnet: note: no GPU backend \($missing_re\); running on the CPU$" <<<"$out")
      [ "$rc" -eq 0 ] && [ "$n" -eq 1 ] && [ "$(rank_codes auto)" = "0 x2 " ] && grep -qE "$epoch2" <<<"$out" \
        && ok "(2) 2 ranks, --device auto: both exit 0, trained on the CPU, one note" \
        || bad "(2) 2 ranks --device auto: mpiexec $rc, ranks $(rank_codes auto), $n notes: $out"
      out=$(WRAP=hidden two_ranks cuda --device cuda "${run[@]}"); rc=$?
      n=$(grep -cE "alexnet: error: --device cuda: the GPU backend cannot be loaded: $missing_re$" <<<"$out")
      [ "$rc" -eq 2 ] && [ "$n" -eq 1 ] && [ "$(rank_codes cuda)" = "2 x2 " ] \
        && ok "(3) 2 ranks, --device cuda: both exit 2, one line naming $first_missing" \
        || bad "(3) 2 ranks --device cuda: mpiexec $rc, ranks $(rank_codes cuda), $n lines: $out"
    else
      skipped="no mpiexec given"
    fi
  fi
else
  skipped="hiding the CUDA libraries needs root and unshare -m"
fi

echo "$pass passed, $fails failed${skipped:+; not run: (2) and (3): $skipped}"
[ "$fails" -eq 0 ] || exit 1
[ -z "$skipped" ] || { echo "SKIP: $skipped"; exit 77; }
