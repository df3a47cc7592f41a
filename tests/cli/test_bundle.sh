#!/usr/bin/env bash
# launch/bundle as a user runs it: bad inputs, then a bundle of the build that holds alexnet,
# moved to another path, running a 2-rank job from a cleaned environment with every library
# but glibc and CUDA taken from the bundle -- and, where a private mount namespace can be made
# (root), once more with the system's Open MPI, PMIx, hwloc, HDF5, Boost and oneDNN hidden.
#   test_bundle.sh PATH/TO/alexnet
# shellcheck disable=SC2015  # `check && ok ... || bad ...`: ok always succeeds
set -u
bin=$1
build=$(cd "$(dirname "$bin")" && pwd -P)
bundle_cmd=$(cd "$(dirname "$0")/../.." && pwd -P)/launch/bundle
fails=0
pass=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ok() { echo "ok: $1"; pass=$((pass + 1)); }
bad() { echo "FAIL: $1"; fails=$((fails + 1)); }
clean_env=(env -i PATH=/usr/bin:/bin HOME="$HOME" OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1)
job=(-np 2 --oversubscribe alexnet --dataset synthetic --model lenet --resize 0 --epochs 1
  --train-limit 256 --test-limit 64 --batch-size 32 --device cpu)
epoch_re="^epoch 1, loss [0-9.]+, train acc [0-9.]+, test acc [0-9.]+, top-5 [0-9.]+, [0-9.]+ examples/sec on 2 ranks \(cpu\)$"

# ---- bad inputs: one line, non-zero exit ---------------------------------------------------------
out=$("$bundle_cmd" --help 2>&1); rc=$?
[ "$rc" -eq 0 ] && grep -q "^Usage: launch/bundle BUILD_DIR OUT_DIR" <<<"$out" && ok "--help prints the usage" \
  || bad "--help: exit $rc: $out"
out=$("$bundle_cmd" "$tmp/no-such-build" "$tmp/x" 2>&1); rc=$?
[ "$rc" -eq 2 ] && grep -q "^bundle: error: build directory '$tmp/no-such-build' does not exist$" <<<"$out" \
  && ok "missing build directory: exit 2" || bad "missing build directory: exit $rc: $out"
mkdir "$tmp/empty-build"
out=$("$bundle_cmd" "$tmp/empty-build" "$tmp/x" 2>&1); rc=$?
[ "$rc" -eq 2 ] && grep -q "^bundle: error: no alexnet binary in " <<<"$out" && ok "build without alexnet: exit 2" \
  || bad "build without alexnet: exit $rc: $out"
mkdir -p "$tmp/full" && touch "$tmp/full/keep"
out=$("$bundle_cmd" "$build" "$tmp/full" 2>&1); rc=$?
[ "$rc" -eq 2 ] && grep -q "exists and is not empty (use --force" <<<"$out" && ok "non-empty OUT_DIR: exit 2" \
  || bad "non-empty OUT_DIR: exit $rc: $out"
out=$("$bundle_cmd" "$build" "$tmp/full" --force 2>&1); rc=$?
[ "$rc" -eq 2 ] && grep -q "is not a bundle made by launch/bundle; not replacing it" <<<"$out" && [ -f "$tmp/full/keep" ] \
  && ok "--force leaves a directory that is not a bundle alone" || bad "--force on a foreign directory: exit $rc: $out"
out=$("$bundle_cmd" "$build" "$tmp/x" --bogus 2>&1); rc=$?
[ "$rc" -eq 2 ] && grep -q "^bundle: error: unknown option '--bogus'" <<<"$out" && ok "unknown option: exit 2" \
  || bad "unknown option: exit $rc: $out"

# ---- make the bundle, then move it -------------------------------------------------------------
echo "making the bundle of $build"
"$bundle_cmd" "$build" "$tmp/first/distnet" --tar; rc=$?
[ "$rc" -eq 0 ] && [ -x "$tmp/first/distnet/run" ] && ok "bundle made" || { bad "launch/bundle exit $rc"; echo "$pass passed, $fails failed"; exit 1; }
[ -s "$tmp/first/distnet.tar.gz" ] && tar -tzf "$tmp/first/distnet.tar.gz" | grep -q "^distnet/bin/alexnet$" \
  && ok "--tar wrote distnet.tar.gz ($(du -h "$tmp/first/distnet.tar.gz" | cut -f1))" || bad "no usable distnet.tar.gz"
out=$("$bundle_cmd" "$build" "$tmp/first/distnet" 2>&1); rc=$?
[ "$rc" -eq 2 ] && ok "an existing bundle is not overwritten without --force" || bad "rebundle without --force: exit $rc: $out"
mkdir -p "$tmp/elsewhere/deeper"
mv "$tmp/first/distnet" "$tmp/elsewhere/deeper/moved"
b=$tmp/elsewhere/deeper/moved
echo "bundle moved to $b ($(du -sh "$b" | cut -f1))"
hits=$(grep -rl -- "$tmp/first" "$b" 2>/dev/null)
[ -z "$hits" ] && ok "no file in the bundle names the path it was made at" || bad "files naming the old path: $hits"

# ---- which libraries the binary resolves, by RUNPATH alone and with the bundle's lib/ ------------
in_bundle() {  # LDD_OUTPUT NAME_REGEX: every match resolves inside the bundle (and there is one)
  local name path found=0
  while read -r name path; do
    [[ $name =~ ^($2)$ ]] || continue
    found=1
    case "$(readlink -f "$path")" in "$b"/lib/*) ;; *) return 1 ;; esac
  done < <(awk '$2 == "=>" { print $1, $3 }' <<<"$1")
  [ "$found" -eq 1 ] || return 2
}
for how in "RUNPATH only" "LD_LIBRARY_PATH=$b/lib"; do
  if [ "$how" = "RUNPATH only" ]; then
    l=$(env -i PATH=/usr/bin:/bin ldd "$b/bin/alexnet" 2>&1)
  else
    l=$(env -i PATH=/usr/bin:/bin LD_LIBRARY_PATH="$b/lib" ldd "$b/bin/alexnet" 2>&1)
  fi
  echo "ldd bin/alexnet ($how):"
  awk '$2 == "=>" { print "  " $1 " => " $3 }' <<<"$l"
  for lib in 'libdnnl\.so[.0-9]*' 'libmpi\.so[.0-9]*' 'libopen-pal\.so[.0-9]*'; do
    in_bundle "$l" "$lib" && ok "$how: $lib resolves inside the bundle" || bad "$how: $lib: $(grep -E "$lib" <<<"$l")"
  done
  for lib in 'libhdf5[_a-z]*\.so[.0-9]*' 'libboost_program_options\.so[.0-9]*'; do
    in_bundle "$l" "$lib"; r=$?
    case $r in
      0) ok "$how: $lib (shared in this build) resolves inside the bundle" ;;
      2) ok "$how: no $lib needed (linked statically)" ;;
      *) bad "$how: $lib: $(grep -E "$lib" <<<"$l")" ;;
    esac
  done
done

# ---- the job, from a cleaned environment, with the loader's record ---------------------------------
mkdir "$tmp/ld" "$tmp/ckpt"
echo "running: ${clean_env[*]} LD_DEBUG=libs $b/run ${job[*]} --checkpoint-dir $tmp/ckpt"
out=$(cd "$tmp" && "${clean_env[@]}" LD_DEBUG=libs LD_DEBUG_OUTPUT="$tmp/ld/ld" "$b/run" "${job[@]}" \
  --checkpoint-dir "$tmp/ckpt" 2>&1); rc=$?
sed 's/^/  | /' <<<"$out"
[ "$rc" -eq 0 ] && ok "2-rank job through the moved bundle exits 0" || bad "job: exit $rc"
grep -qE "$epoch_re" <<<"$out" && ok "epoch line" || bad "no epoch line"
h5=$(find "$tmp/ckpt" -name '*.h5' -printf '%f\n' | head -n 1)
[ -n "$h5" ] && ok "HDF5 checkpoint written ($h5)" \
  || bad "no checkpoint in $tmp/ckpt: $(ls -A "$tmp/ckpt")"
inits=$(cat "$tmp"/ld/ld.* 2>/dev/null | sed -n 's/.*calling init: //p' | sort -u)
nproc_logged=$(find "$tmp/ld" -name 'ld.*' | wc -l)
echo "libraries initialised by the $nproc_logged processes (mpirun, ranks), outside the bundle:"
grep -v "^$b/" <<<"$inits" | sed 's/^/  /'
for lib in libdnnl.so libmpi.so libopen-rte.so libopen-pal.so libpmix.so libhwloc.so libstdc++.so; do
  if grep -q "^$b/lib/$lib" <<<"$inits"; then ok "$lib loaded from the bundle"
  else bad "$lib not loaded from the bundle: $(grep "/$lib" <<<"$inits")"; fi
done
for lib in 'libhdf5[_a-z]*\.so' 'libboost_program_options\.so'; do
  if grep -qE "/$lib" <<<"$inits"; then
    grep -E "/$lib" <<<"$inits" | grep -qv "^$b/lib/" && bad "$lib loaded from outside: $(grep -E "/$lib" <<<"$inits")" \
      || ok "$lib loaded from the bundle"
  else
    ok "$lib not loaded (static)"
  fi
done
n=$(grep -c "^$b/lib/openmpi/mca_" <<<"$inits")
[ "$n" -gt 0 ] && ok "$n Open MPI plugins loaded from the bundle" || bad "no Open MPI plugin loaded from the bundle"
n=$(grep -c "^$b/lib/pmix/" <<<"$inits")
[ "$n" -gt 0 ] && ok "$n PMIx plugins loaded from the bundle" || bad "no PMIx plugin loaded from the bundle"
# Outside the bundle only glibc, the CUDA libraries (the node's) and bash's libtinfo may load.
foreign=$(grep -v "^$b/" <<<"$inits" | grep -vE '/(ld-linux[^/]*|lib(c|m|dl|pthread|rt|resolv|util|anl|nss_[a-z]+|tinfo)\.so[.0-9]*|lib(cudart|cublas|cublasLt|cudnn[a-z_]*|nccl|nvrtc[a-z-]*|cuda)\.so[.0-9]*)$')
[ -z "$foreign" ] && ok "nothing but glibc, CUDA and bash's libtinfo loaded from outside the bundle" \
  || bad "loaded from outside the bundle: $(tr '\n' ' ' <<<"$foreign")"

# ---- one process without a launcher ----------------------------------------------------------------
out=$(cd "$tmp" && "${clean_env[@]}" "$b/run" alexnet --version 2>&1); rc=$?
[ "$rc" -eq 0 ] && grep -q "MPI: Open MPI" <<<"$out" && grep -q "HDF5: " <<<"$out" && ok "run alexnet --version" \
  || bad "run alexnet --version: exit $rc: $out"
# A CUDA build: the backend module travels in bin/, beside alexnet, and is the one alexnet loads.
if [ -f "$build/libdistnet_cuda.so" ]; then
  [ -f "$b/bin/libdistnet_cuda.so" ] && ok "the CUDA module is in bin/, beside alexnet" || bad "no bin/libdistnet_cuda.so in the bundle"
  l=$(ldd "$b/bin/alexnet" 2>&1)
  ! grep -qE 'lib(cudart|cublas|cudnn|nccl)' <<<"$l" && ok "bin/alexnet needs no CUDA library" \
    || bad "bin/alexnet needs CUDA libraries: $(grep -E 'lib(cudart|cublas|cudnn|nccl)' <<<"$l" | tr '\n' ' ')"
  # The node provides the CUDA libraries (docs/portable.md); here they are where the build found
  # them, which need not be on the loader's path, so they are given as a GPU node would.
  cudadirs=$(ldd "$build/libdistnet_cuda.so" | awk '/lib(cudart|cublas|cudnn|nccl)/ && $3 ~ /^\// {print $3}' \
    | xargs -r -n1 dirname | sort -u | paste -sd:)
  out=$(cd "$tmp" && "${clean_env[@]}" LD_LIBRARY_PATH="$cudadirs" "$b/run" alexnet --version 2>&1)
  grep -q "^  gpu backend: CUDA runtime .*; module $b/bin/libdistnet_cuda.so$" <<<"$out" \
    && ok "run alexnet --version loads the bundle's module (CUDA libraries from $cudadirs)" \
    || bad "the bundle's module not loaded: $(grep "gpu backend" <<<"$out")"
fi
out=$(cd "$tmp" && "${clean_env[@]}" "$b/alexnet" --dataset synthetic --model lenet --resize 0 --epochs 1 \
  --train-limit 64 --test-limit 32 --batch-size 32 --device cpu 2>&1); rc=$?
[ "$rc" -eq 0 ] && grep -qE "^epoch 1, .* on 1 rank \(cpu\)$" <<<"$out" && ok "OUT/alexnet (the wrapper srun starts) trains" \
  || bad "OUT/alexnet: exit $rc: $out"

# ---- again with the system's copies hidden (a node without these packages) -------------------------
if [ "$(id -u)" -eq 0 ] && unshare -m --propagation private true 2>/dev/null; then
  hide_dirs=()
  for d in /usr/lib/x86_64-linux-gnu/openmpi /usr/lib/x86_64-linux-gnu/pmix2 /usr/lib/x86_64-linux-gnu/hdf5 \
    /usr/lib/x86_64-linux-gnu/hwloc /usr/share/openmpi /etc/openmpi; do
    [ -d "$d" ] && hide_dirs+=("$d")
  done
  # Every library the bundle ships, except what mount, bash and env themselves need.
  keep=$(for t in mount bash env; do ldd "$(command -v "$t")"; done | awk '$2 == "=>" { print $1 }' | sort -u)
  hide_files=()
  for f in "$b"/lib/*.so*; do
    name=$(basename "$f")
    grep -qx "$name" <<<"$keep" && continue
    for d in /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/lib; do
      [ -e "$d/$name" ] && hide_files+=("$(readlink -f "$d/$name")")
    done
  done
  for f in /usr/bin/orterun /usr/bin/orted /usr/bin/ompi_info /usr/lib/x86_64-linux-gnu/lib{hdf5,boost_program_options,dnnl,mpi,open-rte,open-pal,pmix,hwloc}*.so*; do
    [ -e "$f" ] && hide_files+=("$(readlink -f "$f")")  # and always Open MPI's programs, HDF5, Boost...
  done
  mapfile -t hide_files < <(printf '%s\n' "${hide_files[@]}" | sort -u)
  echo "hiding ${#hide_dirs[@]} directories (${hide_dirs[*]}) and ${#hide_files[@]} system files (the bundled libraries; Open MPI, HDF5, Boost, oneDNN)"
  hidden() {  # CMD...: in a private mount namespace, the system's copies replaced by nothing
    # shellcheck disable=SC2016  # the inner script's variables are its own
    (cd "$tmp" && unshare -m --propagation private bash -c '
      set -e
      nf=$1; shift
      for ((i = 0; i < nf; i++)); do mount --bind /dev/null "$1"; shift; done
      while [ "$1" != "--" ]; do mount -t tmpfs none "$1"; shift; done
      shift
      exec "$@"' hide "${#hide_files[@]}" "${hide_files[@]}" "${hide_dirs[@]}" -- "$@" 2>&1)
  }
  out=$(hidden "${clean_env[@]}" "$bin" --version); rc=$?
  [ "$rc" -ne 0 ] && ok "control: the build's own alexnet cannot start there (exit $rc: $(head -n 1 <<<"$out"))" \
    || bad "control: the build's alexnet still runs with the system's libraries hidden"
  out=$(hidden "${clean_env[@]}" "$b/run" "${job[@]}"); rc=$?
  sed 's/^/  | /' <<<"$out"
  [ "$rc" -eq 0 ] && grep -qE "$epoch_re" <<<"$out" \
    && ok "2-rank job with the system's MPI, PMIx, hwloc, HDF5, Boost and oneDNN hidden" \
    || bad "job with the system's libraries hidden: exit $rc"
  out=$(hidden "${clean_env[@]}" "$b/run" "${job[@]:3}"); rc=$?
  [ "$rc" -eq 0 ] && grep -qE "^epoch 1, .* on 1 rank \(cpu\)$" <<<"$out" \
    && ok "one process without a launcher (Open MPI singleton) with the system's copies hidden" \
    || bad "singleton with the system's libraries hidden: exit $rc: $out"
  out=$(hidden "${clean_env[@]}" "$b/run" -np 2 --map-by bogus alexnet --version); rc=$?
  [ "$rc" -ne 0 ] && grep -q "The specified mapping policy is not recognized" <<<"$out" \
    && ok "Open MPI's help texts come from the bundle" || bad "help text for a bad --map-by: exit $rc: $out"

  # docs/portable.md's recipe for a node whose only CUDA libraries come with PyTorch: the system's
  # CUDA libraries hidden too, LD_LIBRARY_PATH made from site-packages/nvidia.
  cuda_elf=$b/bin/alexnet
  [ -f "$b/bin/libdistnet_cuda.so" ] && cuda_elf=$b/bin/libdistnet_cuda.so  # the CUDA backend
  cuda_needed=$(ldd "$cuda_elf" | awk '$2 == "=>" && $1 ~ /^lib(cudart|cublas|cublasLt|cudnn|nccl)\.so/ { print $1, $3 }')
  nv=$(cd "$tmp" && python3 -c 'import nvidia; print(list(nvidia.__path__)[0])' 2>/dev/null)
  if [ -z "$cuda_needed" ]; then
    echo "skip: PyTorch's CUDA libraries: this build links no CUDA library"
  elif [ -z "$nv" ]; then
    echo "skip: PyTorch's CUDA libraries: python3 has no 'nvidia' package (pip install torch)"
  else
    llp=$(find "$nv" -name 'lib*.so*' -printf '%h\n' | sort -u | paste -sd:)
    missing=$(while read -r name _; do [ -n "$(find "$nv" -name "$name")" ] || echo "$name"; done <<<"$cuda_needed")
    if [ -n "$missing" ]; then
      echo "skip: PyTorch's CUDA libraries: $nv lacks $(tr '\n' ' ' <<<"$missing")(another CUDA major version)"
    else
      while read -r _ path; do hide_files+=("$(readlink -f "$path")"); done <<<"$cuda_needed"
      out=$(hidden "${clean_env[@]}" LD_LIBRARY_PATH="$llp" LD_DEBUG=libs "$b/run" alexnet --version); rc=$?
      from=$(sed -n 's/.*calling init: //p' <<<"$out" | grep -E '/lib(cudart|cublas|cudnn|nccl)' | sort -u)
      echo "CUDA libraries with LD_LIBRARY_PATH=$llp:"
      sed 's/^/  /' <<<"$from"
      [ "$rc" -eq 0 ] && grep -q "gpu backend: CUDA runtime" <<<"$out" && [ -n "$from" ] && ! grep -qv "^$nv/" <<<"$from" \
        && ok "alexnet starts with the CUDA libraries of PyTorch's pip install only" \
        || bad "CUDA libraries from $nv: exit $rc: $(grep -v 'calling\|find library\|search\|trying\|^ *[0-9]*:$' <<<"$out" | head -n 5)"
    fi
  fi
else
  echo "skip: the run with the system's libraries hidden needs root and unshare -m"
fi

echo "$pass passed, $fails failed"
[ "$fails" -eq 0 ]
