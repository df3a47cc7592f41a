#!/usr/bin/env bash
# The validation window's command, rehearsed on the CPU: launch/gpu-rehearse copies the checkout
# as the device tool does, carries the files of launch/gpu-pack (cli.gpu_pack leaves them in
# CARRY_DIR) to out/gpu-carry, and runs the documented command with an empty OUT. Without a GPU
# the CUDA parts skip, each with its reason. Checked, none by timing: exactly one packed file and
# summary.txt come back, the summary is the last thing printed, every step of `gpu-check --list`
# is listed as passed, skipped with a reason or dropped by the budget; then a budget that drops
# every step, a step that hangs (and one that ignores SIGTERM), one that crashes in a test,
# SIGTERM to gpu-check itself, a missing library and an old glibc, a stand-in nvidia-smi that
# turns the CUDA parts' skips into failures, and the usage errors.
#   test_gpu_check.sh CARRY_DIR
# shellcheck disable=SC2015  # `check && ok ... || bad ...`: ok always succeeds
set -u
carry=$(cd "$1" 2>/dev/null && pwd -P) || { echo "skip: no $1 (cli.gpu_pack makes it)"; exit 77; }
[ -f "$carry/distnet.tar.gz" ] || { echo "skip: no $carry/distnet.tar.gz (cli.gpu_pack makes it)"; exit 77; }
root=$(cd "$(dirname "$0")/../.." && pwd -P)
git -C "$root" rev-parse --show-toplevel >/dev/null 2>&1 || { echo "skip: $root is not a git checkout"; exit 77; }
check=$root/launch/gpu-check
fails=0
pass=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ok() { echo "ok: $1"; pass=$((pass + 1)); }
bad() { echo "FAIL: $1"; fails=$((fails + 1)); }
mapfile -t steps < <("$check" --list | awk 'NR > 1 { print $1 }')
[ ${#steps[@]} -ge 10 ] && ok "--list: ${#steps[@]} steps (${steps[*]})" || bad "--list: ${steps[*]}"

# OUT SUMMARY_OUTPUT: exactly the two files; the output ends with summary.txt; the pack holds it.
two_files() {
  local o=$1 output=$2 what=$3 n
  n=$(find "$o" -mindepth 1 | wc -l)
  [ "$n" -eq 2 ] && [ -s "$o/gpu-check.tar.gz" ] && [ -s "$o/summary.txt" ] \
    && ok "$what: OUT holds gpu-check.tar.gz and summary.txt only" || bad "$what: OUT holds $(ls -A "$o" | tr '\n' ' ')"
  [ "$(tail -n "$(wc -l <"$o/summary.txt")" "$output")" = "$(cat "$o/summary.txt")" ] \
    && ok "$what: summary.txt is the last thing printed" || bad "$what: the output does not end with summary.txt"
  tar -xzOf "$o/gpu-check.tar.gz" gpu-check/summary.txt 2>/dev/null | cmp -s - "$o/summary.txt" \
    && ok "$what: the pack holds the same summary" || bad "$what: the packed summary differs from summary.txt"
}
# PID: running (a zombie left to init counts as gone: timeout's SIGKILL ends timeout too)
alive() { local st; st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1); [ -n "$st" ] && [ "$st" != Z ]; }
# SUMMARY STEP: its status line
status_of() { grep -E "^\[[a-zA-Z ]+\] $2( |:|$)" "$1" | head -n 1; }

# ---- the rehearsal: the documented command, from the tool's copy of the checkout ----------------
start=$SECONDS
"$root/launch/gpu-rehearse" --carry "$carry=out/gpu-carry" --timeout 600 --results "$tmp/r" -- \
  bash launch/gpu-check --tarball out/gpu-carry/distnet.tar.gz --data out/gpu-carry/fashion-mnist \
  --out '"$OUT"' --budget 480 >"$tmp/rehearse.txt" 2>&1
rc=$?
sed 's/^/  | /' "$tmp/rehearse.txt"
echo "rehearsal: $((SECONDS - start)) s"
[ "$rc" -eq 0 ] && ok "the rehearsal exits 0 and what OUT holds would come back" || bad "gpu-rehearse: exit $rc"
s=$tmp/r/OUT/summary.txt
if [ -f "$s" ]; then
  two_files "$tmp/r/OUT" "$tmp/r/output.txt" "rehearsal"
  for n in "${steps[@]}"; do
    line=$(status_of "$s" "$n")
    case "$line" in
      "[passed] $n "*) ok "$n: $line" ;;
      "[skipped] $n"*": "?*) ok "$n: $line" ;;
      "[dropped] $n: "*) ok "$n: $line" ;;
      "") bad "$n: not in the summary" ;;
      *) bad "$n: $line" ;;
    esac
  done
  for w in "bundle: distnet" "glibc: node " "libraries: " "version: " "gpu: "; do
    grep -q "^$w" "$s" && ok "the summary has '$w...'" || bad "no '$w' line in the summary"
  done
  grep -qE "^gpu-check: done in [0-9]+ s of a 480 s budget: .*exit 0" "$s" && ok "the last line: done, exit 0" \
    || bad "last line: $(tail -n 1 "$s")"
  listing=$(tar -tzf "$tmp/r/OUT/gpu-check.tar.gz")
  for f in summary.txt steps.txt libraries.txt version.log op-tests.log nccl.log; do
    grep -qx "gpu-check/$f" <<<"$listing" && ok "the pack has $f" || bad "no gpu-check/$f in the pack"
  done
else
  bad "no summary.txt came back"
fi

# ---- a budget that no step fits: each dropped and listed, the pack still made -------------------
mkdir "$tmp/o2"
"$check" --tarball "$carry/distnet.tar.gz" --data "$carry/fashion-mnist" --out "$tmp/o2" --budget 16 >"$tmp/o2.txt" 2>&1
rc=$?
[ "$rc" -eq 0 ] && ok "--budget 16: exit 0" || bad "--budget 16: exit $rc"
two_files "$tmp/o2" "$tmp/o2.txt" "--budget 16"
n=0
for st in "${steps[@]}"; do
  case "$(status_of "$tmp/o2/summary.txt" "$st")" in
    "[dropped] $st: "*" s of the budget left, it needs at least "*) n=$((n + 1)) ;;
    "[skipped] $st: "?*) n=$((n + 1)) ;;  # skipped before the budget is looked at (no PyTorch)
    *) bad "--budget 16: $st: $(status_of "$tmp/o2/summary.txt" "$st")" ;;
  esac
done
[ "$n" -eq ${#steps[@]} ] && ok "--budget 16: all ${#steps[@]} steps dropped (or skipped first) and listed"
grep -q '^\[dropped\] op-tests: ' "$tmp/o2/summary.txt" && ok "--budget 16: the first step is dropped too" \
  || bad "--budget 16: op-tests not dropped"

# ---- a step that hangs, and one that ignores SIGTERM: killed at the cap, the rest goes on --------
mkdir "$tmp/o3"
rm -rf "$tmp/b" && mkdir -p "$tmp/b" && tar -xzf "$carry/distnet.tar.gz" -C "$tmp/b"
"$check" --bundle "$tmp/b/distnet" --out "$tmp/o3" --only hang,stubborn,crash,module-tests \
  --step "hang:2:echo \$\$ >'$tmp/hang.pid'; exec sleep 300" \
  --step "crash:30:printf '[==========] 2 tests\n[ RUN      ] A.B\n[       OK ] A.B (1 ms)\n[ RUN      ] A.C\n'; exit 134" \
  --step "stubborn:2:trap '' TERM; echo \$\$ >'$tmp/stubborn.pid'; sleep 300; sleep 300" >"$tmp/o3.txt" 2>&1
rc=$?
[ "$rc" -eq 1 ] && ok "hung steps: exit 1" || bad "hung steps: exit $rc"
two_files "$tmp/o3" "$tmp/o3.txt" "hung steps"
grep -qE '^\[TIMEOUT\] hang \([0-9.]+ s, cap 2 s\): killed' "$tmp/o3/summary.txt" && ok "hang: [TIMEOUT] at its cap" \
  || bad "hang: $(status_of "$tmp/o3/summary.txt" hang)"
grep -qE '^\[TIMEOUT\] stubborn \([0-9.]+ s, cap 2 s\): killed' "$tmp/o3/summary.txt" \
  && ok "stubborn (ignores SIGTERM): [TIMEOUT], killed after the grace" || bad "stubborn: $(status_of "$tmp/o3/summary.txt" stubborn)"
grep -qE '^\[FAILED\] crash \([0-9.]+ s, cap 30 s\): exit 134 in A\.C; ' "$tmp/o3/summary.txt" \
  && ok "a test binary that crashes: [FAILED], the test it was in named" || bad "crash: $(status_of "$tmp/o3/summary.txt" crash)"
for p in hang stubborn; do
  pid=$(cat "$tmp/$p.pid" 2>/dev/null)
  [ -n "$pid" ] && ! alive "$pid" && ok "$p: its process is gone" || bad "$p: process ${pid:-?} still there"
done
grep -q '^\[passed\] module-tests ' "$tmp/o3/summary.txt" && ok "the step after them still runs" \
  || bad "module-tests: $(status_of "$tmp/o3/summary.txt" module-tests)"
grep -q '^\[not selected\] op-tests (--only)$' "$tmp/o3/summary.txt" && ok "--only: the others listed as not selected" \
  || bad "--only: $(status_of "$tmp/o3/summary.txt" op-tests)"

# ---- SIGTERM to gpu-check during a step: the step is stopped, the results packed and printed -----
mkdir "$tmp/o4"
"$check" --bundle "$tmp/b/distnet" --out "$tmp/o4" --only long \
  --step "long:300:echo \$\$ >'$tmp/long.pid'; exec sleep 300" >"$tmp/o4.txt" 2>&1 &
gc=$!
for _ in $(seq 600); do [ -s "$tmp/long.pid" ] && break; sleep 0.1; done
kill -TERM "$gc"
wait "$gc"
rc=$?
[ "$rc" -eq 1 ] && ok "SIGTERM: exit 1" || bad "SIGTERM: exit $rc"
two_files "$tmp/o4" "$tmp/o4.txt" "SIGTERM"
grep -q '^\[INTERRUPTED\] SIGTERM after [0-9]* s, during long$' "$tmp/o4/summary.txt" && ok "SIGTERM: named in the summary" \
  || bad "SIGTERM: $(grep -i interrupt "$tmp/o4/summary.txt")"
pid=$(cat "$tmp/long.pid" 2>/dev/null)
[ -n "$pid" ] && ! alive "$pid" && ok "SIGTERM: the step's process is gone" || bad "SIGTERM: process ${pid:-?} still there"

# ---- a library the CUDA module cannot find, a glibc too old: one line each, results still packed --
if command -v patchelf >/dev/null; then
  patchelf --add-needed libdistnet_missing_for_test.so.1 "$tmp/b/distnet/bin/libdistnet_cuda.so"
  sed -i 's/^glibc .*/glibc 99.0/' "$tmp/b/distnet/.distnet-bundle"
  mkdir "$tmp/o5"
  "$check" --bundle "$tmp/b/distnet" --out "$tmp/o5" --only module-tests >"$tmp/o5.txt" 2>&1
  two_files "$tmp/o5" "$tmp/o5.txt" "missing library"
  grep -q '^libraries: MISSING: libdistnet_cuda.so: libdistnet_missing_for_test.so.1 => not found (steps run anyway)$' \
    "$tmp/o5/summary.txt" && ok "the missing library named in one line" || bad "libraries: $(grep '^libraries' "$tmp/o5/summary.txt")"
  grep -qE '^glibc: MISSING: node [0-9.]+, bundle needs >= 99.0 ' "$tmp/o5/summary.txt" && ok "an old glibc named in one line" \
    || bad "glibc: $(grep '^glibc' "$tmp/o5/summary.txt")"
else
  echo "skip: the missing-library case needs patchelf"
fi

# ---- where nvidia-smi sees a GPU, a program's "no GPU" is a failure, not a skip -------------------
mkdir -p "$tmp/fakebin" "$tmp/o7"
printf '#!/bin/sh\ncase "$1" in -L) echo "GPU 0: Stand-in GPU (UUID: GPU-0)" ;; *) echo "name, driver_version"; echo "Stand-in GPU, 0.0" ;; esac\n' \
  >"$tmp/fakebin/nvidia-smi"
chmod +x "$tmp/fakebin/nvidia-smi"
PATH=$tmp/fakebin:$PATH "$check" --bundle "$tmp/b/distnet" --out "$tmp/o7" --only op-tests,op-vs-cpu,bench-128-tf32 >"$tmp/o7.txt" 2>&1
rc=$?
[ "$rc" -eq 1 ] && ok "a GPU seen, the CUDA parts unusable: exit 1" || bad "stand-in GPU: exit $rc"
grep -q '^gpu: Stand-in GPU (UUID: GPU-0); Stand-in GPU, 0.0$' "$tmp/o7/summary.txt" && ok "the GPU line from nvidia-smi" \
  || bad "gpu line: $(grep '^gpu' "$tmp/o7/summary.txt")"
grep -qE '^\[FAILED\] op-vs-cpu \([0-9.]+ s\): nvidia-smi sees a GPU, but all [0-9]+ tests skipped: .+' "$tmp/o7/summary.txt" \
  && ok "all tests skipped on a GPU machine: FAILED" || bad "op-vs-cpu: $(status_of "$tmp/o7/summary.txt" op-vs-cpu)"
grep -qE '^\[FAILED\] bench-128-tf32 \([0-9.]+ s\): nvidia-smi sees a GPU, but: --device cuda: .+' "$tmp/o7/summary.txt" \
  && ok "alexnet's refusal on a GPU machine: FAILED" || bad "bench-128-tf32: $(status_of "$tmp/o7/summary.txt" bench-128-tf32)"
grep -qE '^\[passed\] op-tests .*\(SKIPPED ALTHOUGH A GPU IS SEEN: .+\)$' "$tmp/o7/summary.txt" \
  && ok "some tests skipped on a GPU machine: said so" || bad "op-tests: $(status_of "$tmp/o7/summary.txt" op-tests)"

# ---- usage errors: one line, exit 2, nothing run ---------------------------------------------------
for args in "--out $tmp/x" "--tarball $tmp/none.tar.gz --out $tmp/x" "--bundle $tmp/b/distnet --out $tmp/x --only bogus" \
  "--bundle $tmp/b/distnet --out $tmp/x --budget soon" "--bundle $tmp/b/distnet --out $tmp/x --step bad" \
  "--bogus" "$tmp/b/distnet"; do
  # shellcheck disable=SC2086  # the arguments are split on purpose
  out=$("$check" $args 2>&1); rc=$?
  [ "$rc" -eq 2 ] && [ "$(wc -l <<<"$out")" -eq 1 ] && grep -q '^gpu-check: error: ' <<<"$out" \
    && ok "usage error, one line, exit 2: $args" || bad "$args: exit $rc: $out"
done
[ ! -e "$tmp/x" ] && ok "nothing written on a usage error" || bad "$tmp/x written on a usage error"
# The older form, BUNDLE_DIR OUT_DIR, still works.
"$check" "$tmp/b/distnet" "$tmp/o6" --only module-tests >"$tmp/o6.txt" 2>&1
[ -s "$tmp/o6/summary.txt" ] && [ -s "$tmp/o6/gpu-check.tar.gz" ] && ok "the older form BUNDLE_DIR OUT_DIR" \
  || bad "BUNDLE_DIR OUT_DIR: $(tail -n 3 "$tmp/o6.txt")"

echo "$pass passed, $fails failed"
[ "$fails" -eq 0 ]
