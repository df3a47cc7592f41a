#!/usr/bin/env bash
# alexnet under mpiexec as users run it: exit codes on every rank, one message per problem,
# a real 2-rank training run that must learn, and the benchmark mode.
#   test_alexnet_mpi.sh PATH/TO/alexnet MPIEXEC [MPIEXEC FLAGS...]
set -u
bin=$1
shift
mpi=("$@")
fails=0
pass=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ok() { echo "ok: $1"; pass=$((pass + 1)); }
bad() { echo "FAIL: $1"; fails=$((fails + 1)); }

# A bad option: both ranks leave with 2, the message is printed once.
out=$("${mpi[@]}" -n 2 "$bin" --lr 0 2>&1); rc=$?
[ "$rc" -eq 2 ] && ok "bad option exits 2 under mpiexec" || bad "bad option: mpiexec exit $rc: $out"
n=$(grep -c "alexnet: error: --lr must be > 0, got 0" <<<"$out")
[ "$n" -eq 1 ] && ok "bad option reported once" || bad "bad option reported $n times: $out"

# A data problem found after MPI start-up: every rank agrees and exits 1; one message.
out=$("${mpi[@]}" -n 2 "$bin" --model lenet --resize 0 --data-dir "$tmp/none" 2>&1); rc=$?
[ "$rc" -eq 1 ] && ok "missing data exits 1" || bad "missing data: exit $rc: $out"
n=$(grep -c "data directory of fashion-mnist does not exist" <<<"$out")
[ "$n" -eq 1 ] && ok "missing data reported once" || bad "missing data reported $n times: $out"
grep -q "^\[rank 0 " <<<"$out" && ok "message names the rank" || bad "no [rank r host] prefix: $out"

# An unwritable metrics file is found during set-up: every rank exits 1, one message.
out=$("${mpi[@]}" -n 2 "$bin" --model lenet --resize 0 --metrics-file /nonexistent/dir/m.jsonl 2>&1); rc=$?
[ "$rc" -eq 1 ] && [ "$(grep -c "/nonexistent/dir/m.jsonl: cannot open the metrics file for writing: No such file or directory" <<<"$out")" -eq 1 ] \
  && ok "unwritable metrics file" || bad "metrics file: exit $rc: $out"

# A model that does not fit the data: a usage error (2) found after start-up.
out=$("${mpi[@]}" -n 2 "$bin" --model alexnet --resize 0 2>&1); rc=$?
[ "$rc" -eq 2 ] && ok "model/data mismatch exits 2" || bad "mismatch: exit $rc: $out"

# End to end: LeNet on the real Fashion-MNIST, 1 epoch on 2 ranks, must reach 0.80 test accuracy.
out=$("${mpi[@]}" -n 2 "$bin" --model lenet --resize 0 --epochs 1 --lr 0.1 --momentum 0.9 \
  --metrics-file "$tmp/m.jsonl" 2>&1); rc=$?
[ "$rc" -eq 0 ] && ok "2-rank training exits 0" || bad "training: exit $rc: $out"
grep -qE "^epoch 1, loss [0-9.]+, train acc [0-9.]+, test acc [0-9.]+, top-5 [0-9.]+, [0-9.]+ examples/sec on 2 ranks \(cpu\)$" <<<"$out" \
  && ok "epoch line" || bad "no epoch line: $out"
acc=$(grep '"event":"epoch"' "$tmp/m.jsonl" | sed -E 's/.*"test_acc":([0-9.]+).*/\1/')
python3 -c "import sys; sys.exit(0 if float('${acc:-0}') >= 0.80 else 1)" \
  && ok "test accuracy $acc >= 0.80" || bad "test accuracy ${acc:-none} < 0.80"
grep -q '"event":"run".*"ranks":2.*"ctx":\[{"rank":0' "$tmp/m.jsonl" && ok "metrics file has the run and ctx list" \
  || bad "metrics file: $(head -c 300 "$tmp/m.jsonl")"
grep -q "ctx rank 1: host" <<<"$out" && ok "ctx list printed" || bad "no ctx list: $out"

# --device cuda where no GPU is usable: every rank exits 2, one line saying why.
out=$("${mpi[@]}" -n 2 "$bin" --device cuda --model lenet --resize 0 --epochs 1 2>&1); rc=$?
n=$(grep -c "alexnet: error: --device cuda: " <<<"$out")
[ "$rc" -eq 2 ] && [ "$n" -eq 1 ] && ok "--device cuda without a GPU: exit 2, one message" \
  || bad "--device cuda without a GPU: exit $rc, $n messages: $out"

# Gradients as bf16 on the wire: the same run still learns. One epoch's test accuracy moves by
# 2-3 points with rounding alone (fp32 runs on two CPU models here: 0.840 and 0.846), so the
# bound is 5 points; the accuracy cost itself is measured, not asserted (docs/gpus.md).
out=$("${mpi[@]}" -n 2 "$bin" --model lenet --resize 0 --epochs 1 --lr 0.1 --momentum 0.9 \
  --grad-compression bf16 --metrics-file "$tmp/bf16.jsonl" 2>&1); rc=$?
acc16=$(grep '"event":"epoch"' "$tmp/bf16.jsonl" | sed -E 's/.*"test_acc":([0-9.]+).*/\1/')
[ "$rc" -eq 0 ] && python3 -c "import sys; a, b = float('${acc16:-0}'), float('${acc:-0}'); sys.exit(0 if a >= 0.75 and abs(a - b) <= 0.05 else 1)" \
  && ok "bf16 wire: test accuracy $acc16 (fp32: $acc)" || bad "bf16 wire: exit $rc, acc ${acc16:-none} vs $acc: $out"

# More ranks than samples: ranks 2 and 3 get empty slices and still join every collective.
# The run must equal one process with the same 2 samples (the same loss and test accuracy),
# and the test accuracy after one step is a real figure, near chance, never 0.
for n in 1 4; do
  "${mpi[@]}" -n $n "$bin" --model lenet --train-limit 2 --batch-size 2 --epochs 1 --test-limit 1000 \
    --workers 1 --metrics-file "$tmp/empty-$n.jsonl" >"$tmp/empty-$n.log" 2>&1
done
e1=$(grep '"event":"epoch"' "$tmp/empty-1.jsonl" | sed -E 's/.*"loss":([0-9.]+).*"test_loss":([0-9.]+),"test_acc":([0-9.]+).*/\1 \2 \3/')
e4=$(grep '"event":"epoch"' "$tmp/empty-4.jsonl" | sed -E 's/.*"loss":([0-9.]+).*"test_loss":([0-9.]+),"test_acc":([0-9.]+).*/\1 \2 \3/')
acc_e=$(cut -d' ' -f3 <<<"$e4")
[ -n "$e1" ] && [ "$e1" = "$e4" ] && python3 -c "import sys; sys.exit(0 if 0.03 < float('${acc_e:-0}') < 0.3 else 1)" \
  && ok "4 ranks, 2 samples (two empty slices) = 1 process: loss, test loss, test acc $e4" \
  || bad "empty slices: 1 rank '$e1' vs 4 ranks '$e4': $(cat "$tmp/empty-4.log")"

# Overlap off gives the same training (the all-reduces only move): identical loss figures.
for ov in on off; do
  "${mpi[@]}" -n 2 "$bin" --model lenet --resize 0 --epochs 1 --train-limit 2048 --test-limit 512 \
    --overlap $ov --bucket-mb 0.1 --metrics-file "$tmp/ov-$ov.jsonl" >/dev/null 2>&1
done
l_on=$(grep '"event":"epoch"' "$tmp/ov-on.jsonl" | sed -E 's/.*"loss":([0-9.]+).*"test_acc":([0-9.]+).*/\1 \2/')
l_off=$(grep '"event":"epoch"' "$tmp/ov-off.jsonl" | sed -E 's/.*"loss":([0-9.]+).*"test_acc":([0-9.]+).*/\1 \2/')
[ -n "$l_on" ] && [ "$l_on" = "$l_off" ] && ok "overlap on/off: identical loss and accuracy ($l_on)" \
  || bad "overlap on/off differ: '$l_on' vs '$l_off'"

# Benchmark mode on synthetic data.
out=$("${mpi[@]}" -n 2 "$bin" --benchmark --model lenet --resize 28 --steps 5 --warmup-steps 1 2>&1); rc=$?
[ "$rc" -eq 0 ] && grep -qE "images/s: [0-9.]+ total, [0-9.]+ per rank" <<<"$out" \
  && grep -qE "step time: [0-9.]+ ms = compute [0-9.-]+ \+ exposed communication [0-9.]+ \+ stop vote [0-9.]+ \+ data wait [0-9.]+" <<<"$out" \
  && ok "benchmark figures" || bad "benchmark: exit $rc: $out"

# Compute alone (--comm none, benchmark only): the reference for exposed communication.
out=$("${mpi[@]}" -n 2 "$bin" --benchmark --comm none --model lenet --resize 28 --steps 3 --warmup-steps 1 2>&1); rc=$?
[ "$rc" -eq 0 ] && grep -q "images/s:" <<<"$out" && ok "benchmark with --comm none" || bad "--comm none: exit $rc: $out"

# launch/run-local: picks the binary from ALEXNET, starts the ranks, forwards the environment.
runlocal=$(cd "$(dirname "$0")/../.." && pwd)/launch/run-local
out=$(ALEXNET="$bin" NCCL_DEBUG=WARN "$runlocal" -np 2 --benchmark --model lenet --resize 28 --steps 2 \
  --warmup-steps 1 2>&1); rc=$?
[ "$rc" -eq 0 ] && grep -q "run-local: 2 rank(s)" <<<"$out" && grep -q -- "-x NCCL_DEBUG" <<<"$out" \
  && grep -q "images/s:" <<<"$out" && ok "run-local starts 2 ranks and forwards NCCL_*" || bad "run-local: exit $rc: $out"
out=$(ALEXNET="$bin" "$runlocal" -np zero --help 2>&1); rc=$?
[ "$rc" -eq 2 ] && grep -q "run-local: error: -np needs a positive integer, got 'zero'" <<<"$out" \
  && ok "run-local rejects a bad -np" || bad "run-local -np zero: exit $rc: $out"

echo "$pass passed, $fails failed"
[ "$fails" -eq 0 ]
