#!/usr/bin/env bash
# --optimizer lars and adamw as users run them, under mpiexec: exact resume after a stop in the
# middle of a step and at an epoch boundary (bitwise, h5diff), on one process and on the grid
# (--model-parallel 2); checkpoint format 2 (/optimizer/<slot>, read with h5py); resume with
# another optimizer refused; every bad option value: exit 2 and one line from the whole job.
#   test_optimizers.sh PATH/TO/alexnet MPIEXEC [MPIEXEC FLAGS...]
set -u
bin=$1
shift
mpi=("$@")
pass=0
fails=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ok() { echo "ok: $1"; pass=$((pass + 1)); }
bad() { echo "FAIL: $1"; fails=$((fails + 1)); }
# Parameters and optimizer state equal bit for bit (h5diff without a tolerance).
same_state() {
  h5diff "$1" "$2" /params /params >/dev/null && h5diff "$1" "$2" /optimizer /optimizer >/dev/null
}

base=(--model lenet --resize 0 --dataset synthetic --synthetic-shape 1x28x28
  --synthetic-train-size 320 --synthetic-test-size 64 --batch-size 32 --workers 1 --progress off)
declare -A opts=(
  [adamw]="--optimizer adamw --lr 0.002 --weight-decay 0.05 --adam-beta2 0.99 --lr-schedule poly --warmup-epochs 0.5"
  [lars]="--optimizer lars --lr 2 --momentum 0.9 --weight-decay 5e-4 --lars-trust 0.01 --lr-schedule poly --lr-poly-power 2 --warmup-epochs 0.5 --lr-mult conv1=0.5")

for o in adamw lars; do
  read -ra extra <<<"${opts[$o]}"
  for m in 1 2; do
    n=2
    tag="$o, --model-parallel $m on $n ranks"
    "${mpi[@]}" -n $n "$bin" "${base[@]}" "${extra[@]}" --model-parallel $m --epochs 2 \
      --checkpoint-dir "$tmp/$o-$m-straight" >"$tmp/$o-$m-straight.log" 2>&1 \
      || bad "$tag: straight run: $(tail -3 "$tmp/$o-$m-straight.log")"
    final=$(ls "$tmp/$o-$m-straight"/ckpt-*.h5 2>/dev/null | tail -1)
    # A stop in the middle of step 14 of 20 (epoch 2): step 13 is saved, then resumed.
    "${mpi[@]}" -n $n "$bin" "${base[@]}" "${extra[@]}" --model-parallel $m --epochs 2 \
      --checkpoint-dir "$tmp/$o-$m-stop" --debug-fault stop-in-step:14 >"$tmp/$o-$m-stop1.log" 2>&1
    rc=$?
    [ $rc -eq 3 ] && grep -qE "stopped on request at step 1[34]" "$tmp/$o-$m-stop1.log" \
      || bad "$tag: the stop: exit $rc: $(tail -3 "$tmp/$o-$m-stop1.log")"
    "${mpi[@]}" -n $n "$bin" "${base[@]}" "${extra[@]}" --model-parallel $m --epochs 2 \
      --checkpoint-dir "$tmp/$o-$m-stop" --resume auto >"$tmp/$o-$m-stop2.log" 2>&1 \
      || bad "$tag: resume: $(tail -3 "$tmp/$o-$m-stop2.log")"
    [ -n "$final" ] && same_state "$final" "$tmp/$o-$m-stop/$(basename "$final")" \
      && ok "$tag: stopped mid-step, resumed: bitwise the straight run" \
      || bad "$tag: the resumed run differs from the straight run"
    # A stop in the first step of epoch 2: the end of epoch 1 is saved, then resumed.
    "${mpi[@]}" -n $n "$bin" "${base[@]}" "${extra[@]}" --model-parallel $m --epochs 2 \
      --checkpoint-dir "$tmp/$o-$m-split" --debug-fault stop-in-step:11 >/dev/null 2>&1
    ls "$tmp/$o-$m-split"/ckpt-epoch0001-step00000010.h5 >/dev/null 2>&1 || bad "$tag: no epoch-end checkpoint"
    "${mpi[@]}" -n $n "$bin" "${base[@]}" "${extra[@]}" --model-parallel $m --epochs 2 \
      --checkpoint-dir "$tmp/$o-$m-split" --resume auto >"$tmp/$o-$m-split.log" 2>&1
    [ -n "$final" ] && same_state "$final" "$tmp/$o-$m-split/$(basename "$final")" \
      && ok "$tag: epoch-boundary resume is bitwise exact" \
      || bad "$tag: epoch-boundary resume differs: $(tail -3 "$tmp/$o-$m-split.log")"
  done
done

# Format 2, readable without distnet.
final=$(ls "$tmp"/adamw-1-straight/ckpt-*.h5 | tail -1)
/usr/bin/python3 - "$final" "$(ls "$tmp"/lars-1-straight/ckpt-*.h5 | tail -1)" <<'PY' \
  && ok "format 2 read with h5py: attributes and /optimizer/<slot> of every tensor" || bad "format 2 with h5py"
import sys, h5py
for path, opt, slots in ((sys.argv[1], "adamw", ["exp_avg", "exp_avg_sq"]),
                         (sys.argv[2], "lars", ["momentum"])):
    with h5py.File(path, "r") as f:
        a = f.attrs
        assert int(a["format_version"]) == 2, a["format_version"]
        name = a["optimizer"]
        name = name.decode() if isinstance(name, bytes) else str(name)
        assert name == opt, name
        assert int(a["optimizer_steps"]) == int(a["step"]) - int(a["skipped_steps"]) == 20
        assert "momentum" not in f and sorted(f["optimizer"]) == sorted(slots), list(f)
        for s in slots:
            for layer in f["params"]:
                for t in f["params"][layer]:
                    assert f["optimizer"][s][layer][t].shape == f["params"][layer][t].shape
        if opt == "adamw":  # the second moment is a mean of squares: never negative
            assert all((f["optimizer/exp_avg_sq"][l][t][()] >= 0).all()
                       for l in f["params"] for t in f["params"][l])
PY

# Resume with another optimizer (or settings): refused, one line, exit 2 on every rank.
one_line() {  # one_line RC OUTPUT TEXT
  [ "$1" -eq 2 ] && [ "$(grep -c -- "$3" <<<"$2")" -eq 1 ] && [ "$(grep -c "alexnet: error" <<<"$2")" -eq 1 ]
}
read -ra lars <<<"${opts[lars]}"
out=$("${mpi[@]}" -n 2 "$bin" "${base[@]}" "${lars[@]}" --epochs 2 --resume "$final" 2>&1); rc=$?
one_line $rc "$out" "cannot resume with optimizer = lars: the run was started with optimizer = adamw" \
  && ok "an adamw checkpoint resumed with --optimizer lars is refused" || bad "resume adamw as lars: exit $rc: $out"
read -ra adamw <<<"${opts[adamw]}"
out=$("${mpi[@]}" -n 2 "$bin" "${base[@]}" "${adamw[@]/0.99/0.999}" --epochs 2 --resume "$final" 2>&1); rc=$?
one_line $rc "$out" "cannot resume with adam-beta2 = 0.999: the run was started with adam-beta2 = 0.99" \
  && ok "another --adam-beta2 on resume is refused" || bad "resume with another beta2: exit $rc: $out"
"${mpi[@]}" -n 2 "$bin" "${base[@]}" --lr 0.05 --momentum 0.9 --epochs 1 --checkpoint-dir "$tmp/sgd" >/dev/null 2>&1
sgd=$(ls "$tmp"/sgd/ckpt-*.h5 | tail -1)
/usr/bin/python3 -c "import h5py,sys; f=h5py.File(sys.argv[1]); sys.exit(0 if int(f.attrs['format_version']) == 1 and 'momentum' in f and 'optimizer' not in f else 1)" "$sgd" \
  && ok "sgd still writes format 1 (/momentum)" || bad "sgd checkpoint layout changed"
out=$("${mpi[@]}" -n 2 "$bin" "${base[@]}" --optimizer adamw --lr 0.05 --epochs 2 --resume "$sgd" 2>&1); rc=$?
one_line $rc "$out" "cannot resume with optimizer = adamw: the run was started with optimizer = sgd" \
  && ok "an sgd checkpoint resumed with --optimizer adamw is refused" || bad "resume sgd as adamw: exit $rc: $out"
out=$("${mpi[@]}" -n 2 "$bin" "${base[@]}" "${adamw[@]}" --epochs 1 --init-from "$sgd" 2>&1); rc=$?
[ $rc -eq 0 ] && ok "--init-from an sgd checkpoint with --optimizer adamw (fresh state)" || bad "init-from: exit $rc: $out"

# Bad values: exit 2, one line (rank 0's) for the whole job.
while IFS='|' read -r args text; do
  read -ra a <<<"$args"
  out=$("${mpi[@]}" -n 2 "$bin" "${base[@]}" --epochs 1 "${a[@]}" 2>&1 </dev/null); rc=$?
  one_line $rc "$out" "$text" && ok "$args: refused" || bad "$args: exit $rc: $out"
done <<'EOF2'
--optimizer adam|--optimizer must be one of sgd, lars, adamw
--optimizer adamw --adam-beta1 1|--adam-beta1 must be in \[0, 1), got 1
--optimizer adamw --adam-beta2 -0.1|--adam-beta2 must be in \[0, 1), got -0.1
--optimizer adamw --adam-eps 0|--adam-eps must be > 0, got 0
--optimizer lars --lars-trust 0|--lars-trust must be > 0, got 0
--lr-schedule poly --lr-poly-power 0|--lr-poly-power must be > 0, got 0
--optimizer adamw --momentum 0.9|--momentum is for sgd and lars
--adam-beta1 0.8|--adam-beta1, --adam-beta2 and --adam-eps are for --optimizer adamw
--optimizer adamw --lars-trust 0.02|--lars-trust is for --optimizer lars
--lr-schedule cosine --lr-poly-power 1|--lr-poly-power is for --lr-schedule poly
--lr-schedule linear|--lr-schedule must be constant, step, cosine or poly
EOF2

echo "$pass passed, $fails failed"
[ "$fails" -eq 0 ]
