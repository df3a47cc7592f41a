#!/usr/bin/env bash
# The fault matrix of docs/reliability.md: each fault a user can meet, what they see, what is
# kept -- with alexnet under mpiexec on 2 ranks (1 where the fault is rank 0's alone). Faults
# are placed exactly (--debug-fault, files damaged by hand), never by timing.
#   test_fault_matrix.sh PATH/TO/alexnet MPIEXEC [MPIEXEC FLAGS...]
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
# exactly one line says "alexnet: error:", and it contains every given piece
one_error() {
  local log=$1
  shift
  local n
  n=$(grep -c "alexnet: error:" "$log")
  [ "$n" -eq 1 ] || return 1
  for piece in "$@"; do grep "alexnet: error:" "$log" | grep -qF -- "$piece" || return 1; done
  ! grep -q "HDF5-DIAG" "$log"
}
finite_h5() {  # every tensor of a checkpoint finite, read by h5py
  /usr/bin/python3 - "$1" <<'EOF'
import sys, h5py, numpy as np
bad = []
with h5py.File(sys.argv[1], "r") as f:
    f.visititems(lambda n, o: bad.append(n) if isinstance(o, h5py.Dataset) and not np.isfinite(o[()]).all() else None)
sys.exit(1 if bad else 0)
EOF
}
valid_json_lines() { /usr/bin/python3 -c "import json,sys; [json.loads(l) for l in open(sys.argv[1])]" "$1"; }
np2() { "${mpi[@]}" -n 2 "$bin" "$@"; }

# 6 steps of 256 per epoch; a checkpoint every 2 steps.
# Options given per case (--lr, --batch-size, --resize) are left out of `base`.
base=(--model lenet --train-limit 1536 --test-limit 256 --momentum 0.9 --workers 1 --progress off)
run=("${base[@]}" --resize 0 --batch-size 256 --lr 0.05)

# --- Divergence -------------------------------------------------------------------------------
# A NaN in rank 1's summed gradient at step 5, after checkpoints at steps 2 and 4.
np2 "${run[@]}" --epochs 1 --checkpoint-dir "$tmp/nan" --checkpoint-every 2steps --keep-checkpoints 1 \
  --metrics-file "$tmp/nan.json" --debug-fault nonfinite:1:5 >"$tmp/nan.log" 2>&1
rc=$?
[ $rc -eq 4 ] && ok "divergence: exit 4" || bad "divergence: exit $rc: $(cat "$tmp/nan.log")"
one_error "$tmp/nan.log" "non-finite gradient at step 5 (epoch 1, batch 5)" "conv1 (conv1.bias)" \
  && ok "divergence: one line naming the step and the first layer" || bad "divergence message: $(cat "$tmp/nan.log")"
[ "$(ls "$tmp/nan")" = "$(printf 'ckpt-epoch0001-step00000004.h5\nclasses.txt' | grep ckpt)" ] \
  && finite_h5 "$tmp/nan/ckpt-epoch0001-step00000004.h5" \
  && ok "divergence: the newest finite checkpoint (step 4) is kept, nothing newer written" \
  || bad "divergence: checkpoints $(ls "$tmp/nan")"
valid_json_lines "$tmp/nan.json" && ok "divergence: the metrics file is valid JSON" || bad "metrics: $(cat "$tmp/nan.json")"
# A real divergence: an absurd learning rate.
np2 "${base[@]}" --resize 0 --batch-size 256 --epochs 1 --lr 1e6 --metrics-file "$tmp/lr.json" >"$tmp/lr.log" 2>&1
rc=$?
[ $rc -eq 4 ] && one_error "$tmp/lr.log" "non-finite" "the first layer with a non-finite" \
  && ok "--lr 1e6: stops with exit 4 and one line" || bad "--lr 1e6: exit $rc: $(cat "$tmp/lr.log")"
valid_json_lines "$tmp/lr.json" && ! grep -qi nan "$tmp/lr.json" \
  && ok "--lr 1e6: metrics stay JSON" || bad "--lr 1e6 metrics: $(cat "$tmp/lr.json")"
# skip-step: the step is passed over, the run finishes; resume keeps the count.
np2 "${run[@]}" --epochs 2 --checkpoint-dir "$tmp/skip" --on-nonfinite skip-step \
  --debug-fault nonfinite:0:3 >"$tmp/skip.log" 2>&1
rc=$?
[ $rc -eq 0 ] && grep -q "non-finite gradient at step 3: step skipped, nothing applied (1 of at most 10" "$tmp/skip.log" \
  && ok "skip-step: step 3 skipped, the run finishes" || bad "skip-step: exit $rc: $(cat "$tmp/skip.log")"
/usr/bin/python3 -c "
import h5py,sys; f=h5py.File(sys.argv[1]); sys.exit(0 if f.attrs['skipped_steps']==1 and f.attrs['step']==12 else 1)" \
  "$tmp/skip/ckpt-epoch0002-step00000012.h5" && ok "skip-step: the checkpoint records 1 skipped step" \
  || bad "skip-step: checkpoint attributes"
np2 "${run[@]}" --epochs 1 --on-nonfinite skip-step --max-skipped-steps 0 --debug-fault nonfinite:1:2 \
  >"$tmp/skip0.log" 2>&1
rc=$?
[ $rc -eq 4 ] && one_error "$tmp/skip0.log" "after 0 skipped steps (--max-skipped-steps 0)" \
  && ok "skip-step: the bound stops the run" || bad "skip bound: exit $rc: $(cat "$tmp/skip0.log")"

# --- A directory belongs to one run -----------------------------------------------------------
np2 "${run[@]}" --epochs 1 --checkpoint-dir "$tmp/own" --checkpoint-every 3steps >"$tmp/own1.log" 2>&1 \
  || bad "first run: $(cat "$tmp/own1.log")"
before=$(ls "$tmp/own" | grep ckpt | md5sum)
np2 "${run[@]}" --epochs 1 --checkpoint-dir "$tmp/own" >"$tmp/own2.log" 2>&1
rc=$?
[ $rc -eq 2 ] && one_error "$tmp/own2.log" "holds 2 checkpoints of run" "--resume auto" "--start-over" \
  && [ "$(ls "$tmp/own" | grep ckpt | md5sum)" = "$before" ] \
  && ok "a new run over another run's checkpoints is refused, nothing touched" || bad "ownership: exit $rc: $(cat "$tmp/own2.log")"
np2 "${run[@]}" --epochs 1 --checkpoint-dir "$tmp/own" --start-over aside --keep-checkpoints 1 \
  --checkpoint-every 1steps >"$tmp/own3.log" 2>&1
rc=$?
[ $rc -eq 0 ] && [ "$(ls "$tmp"/own/previous-*/ckpt-* | wc -l)" -eq 2 ] \
  && [ "$(ls "$tmp"/own/ckpt-* | wc -l)" -eq 1 ] \
  && ok "--start-over aside: the old run's files moved aside, rotation keeps its own" \
  || bad "start-over aside: exit $rc: $(ls -R "$tmp/own") $(cat "$tmp/own3.log")"
/usr/bin/python3 -c "
import h5py,sys,glob
ids={h5py.File(p).attrs['run_id'] for p in glob.glob(sys.argv[1]+'/ckpt-*.h5')}
old={h5py.File(p).attrs['run_id'] for p in glob.glob(sys.argv[1]+'/previous-*/ckpt-*.h5')}
sys.exit(0 if len(ids)==1 and len(old)==1 and ids!=old else 1)" "$tmp/own" \
  && ok "run ids: one per run, in every checkpoint" || bad "run ids"
np2 "${run[@]}" --epochs 1 --checkpoint-dir "$tmp/own" --start-over delete >"$tmp/own4.log" 2>&1 \
  && [ "$(ls "$tmp"/own/ckpt-* | wc -l)" -eq 1 ] && ok "--start-over delete" || bad "start-over delete: $(cat "$tmp/own4.log")"
# The lock: a second run on a directory in use is refused, naming the holder; the first run's
# temporary files are not touched. (The holder is a process that holds the flock, as a run does.)
mkdir -p "$tmp/locked"
touch "$tmp/locked/.ckpt-epoch0001-step00000003.h5.tmp-999"
echo "host elsewhere, pid 4242, run 0123456789abcdef" >"$tmp/locked/.distnet.lock"
exec 9<"$tmp/locked/.distnet.lock"
flock -x 9
"$bin" "${run[@]}" --epochs 1 --checkpoint-dir "$tmp/locked" >"$tmp/lock.log" 2>&1
rc=$?
exec 9<&-
[ $rc -eq 2 ] && one_error "$tmp/lock.log" "is in use by another run (host elsewhere, pid 4242, run 0123456789abcdef)" \
  && [ -f "$tmp/locked/.ckpt-epoch0001-step00000003.h5.tmp-999" ] \
  && ok "lock: a second run is refused, naming the holder; its temporary file is kept" \
  || bad "lock: exit $rc: $(cat "$tmp/lock.log")"

# --- Resume checks ----------------------------------------------------------------------------
np2 "${run[@]}" --epochs 1 --checkpoint-dir "$tmp/res" --checkpoint-every 2steps --keep-checkpoints 5 \
  >"$tmp/res.log" 2>&1 || bad "resume base run: $(cat "$tmp/res.log")"
before=$(md5sum "$tmp"/res/ckpt-* | md5sum)
for change in "--seed 7:cannot resume with seed = 7" "--resize 32:cannot resume with resize = 32" \
  "--dataset synthetic:cannot resume with dataset = synthetic" \
  "--drop-last:cannot resume with drop-last = true" "--dropout 0.3:cannot resume with dropout = 0.3" \
  "--lr 0.01:cannot resume with lr = 0.01" \
  "--batch-size 128:written with a global batch of 256, this run has 128"; do
  opt=${change%%:*}
  want=${change#*:}
  given=(--resize 0 --batch-size 256 --lr 0.05)
  case $opt in --resize*) given=(--batch-size 256 --lr 0.05) ;; --lr*) given=(--resize 0 --batch-size 256) ;;
    --batch-size*) given=(--resize 0 --lr 0.05) ;; esac
  # shellcheck disable=SC2086
  np2 "${base[@]}" "${given[@]}" $opt --epochs 2 --checkpoint-dir "$tmp/res" --resume auto >"$tmp/res2.log" 2>&1
  rc=$?
  [ $rc -eq 2 ] && one_error "$tmp/res2.log" "$want" \
    && ok "resume with $opt: refused, naming the setting" || bad "resume $opt: exit $rc: $(cat "$tmp/res2.log")"
done
[ "$(md5sum "$tmp"/res/ckpt-* | md5sum)" = "$before" ] && ok "refused resumes touched no checkpoint" \
  || bad "refused resumes changed the checkpoints"
# A damaged newest checkpoint (a flipped byte in /params): the previous one is used, with a warning.
cp -r "$tmp/res" "$tmp/flip"
newest=$(ls "$tmp"/flip/ckpt-* | tail -1)
/usr/bin/python3 - "$newest" <<'EOF'
import h5py, sys
f = h5py.File(sys.argv[1], "r"); d = f["params/dense2/weight"]
off = d.id.get_offset() if d.chunks is None else d.id.get_chunk_info(0).byte_offset
f.close()
with open(sys.argv[1], "r+b") as g:
    g.seek(off + 10); b = g.read(1); g.seek(off + 10); g.write(bytes([b[0] ^ 0x04]))
EOF
np2 "${run[@]}" --epochs 1 --checkpoint-dir "$tmp/flip" --resume auto >"$tmp/flip.log" 2>&1
rc=$?
[ $rc -eq 0 ] && grep -q "warning: skipping checkpoint $newest: .*dense2/weight fails its checksum" "$tmp/flip.log" \
  && grep -q "resuming from .*ckpt-epoch0001-step00000004.h5" "$tmp/flip.log" \
  && ok "a flipped byte in /params: the checksum catches it, the previous checkpoint is used" \
  || bad "flipped byte: exit $rc: $(cat "$tmp/flip.log")"
# Every checkpoint unusable: an error, not a fresh start over them.
cp -r "$tmp/res" "$tmp/allbad"
for f in "$tmp"/allbad/ckpt-*; do /usr/bin/python3 -c "import h5py,sys; h5py.File(sys.argv[1],'r+').attrs['step']=-5" "$f"; done
before=$(md5sum "$tmp"/allbad/ckpt-* | md5sum)
np2 "${run[@]}" --epochs 1 --checkpoint-dir "$tmp/allbad" --resume auto >"$tmp/allbad.log" 2>&1
rc=$?
[ $rc -eq 1 ] && one_error "$tmp/allbad.log" "none of its 3 checkpoints can be resumed" \
  && grep -q "attribute 'step' is -5, expected at least 0" "$tmp/allbad.log" \
  && [ "$(md5sum "$tmp"/allbad/ckpt-* | md5sum)" = "$before" ] \
  && ok "no usable checkpoint: refused, nothing started or deleted" || bad "all bad: exit $rc: $(cat "$tmp/allbad.log")"
cp "$tmp/res/ckpt-epoch0001-step00000004.h5" "$tmp/edited.h5"
/usr/bin/python3 -c "import h5py,sys; h5py.File(sys.argv[1],'r+').attrs['step']=100000" "$tmp/edited.h5"
np2 "${run[@]}" --epochs 1 --resume "$tmp/edited.h5" >"$tmp/edited.log" 2>&1
rc=$?
[ $rc -eq 1 ] && one_error "$tmp/edited.log" "its step 100000 is not epoch 0, batch 4" \
  && ok "an edited step is refused" || bad "edited step: exit $rc: $(cat "$tmp/edited.log")"
"$bin" "${run[@]}" --epochs 1 --resume "$tmp/no-such.h5" >"$tmp/nofile.log" 2>&1
rc=$?
[ $rc -ne 0 ] && one_error "$tmp/nofile.log" "no-such.h5: cannot read: No such file or directory" \
  && ok "--resume of a missing file says so" || bad "missing resume file: exit $rc: $(cat "$tmp/nofile.log")"

# --- Metrics across a requeue; the loss after a stop mid-step ----------------------------------
np2 "${run[@]}" --epochs 2 --metrics-file "$tmp/straight.json" >"$tmp/straight.log" 2>&1 || bad "straight: $(cat "$tmp/straight.log")"
np2 "${run[@]}" --epochs 2 --checkpoint-dir "$tmp/mid" --metrics-file "$tmp/mid.json" \
  --debug-fault stop-in-step:9 >"$tmp/mid1.log" 2>&1
rc=$?
[ $rc -eq 3 ] && grep -q "stopped on request at step 8 (the step in progress was abandoned, not applied)" "$tmp/mid1.log" \
  && ok "a stop in the middle of step 9 abandons it and saves step 8" || bad "mid-step stop: exit $rc: $(cat "$tmp/mid1.log")"
np2 "${run[@]}" --epochs 2 --checkpoint-dir "$tmp/mid" --metrics-file "$tmp/mid.json" --resume auto >"$tmp/mid2.log" 2>&1 \
  || bad "mid-step resume: $(cat "$tmp/mid2.log")"
/usr/bin/python3 - "$tmp/straight.json" "$tmp/mid.json" <<'EOF' && ok "metrics: one history across the requeue, epoch figures equal to the uninterrupted run's" || bad "metrics across the requeue: $(cat "$tmp/mid.json")"
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
ea = [r for r in a if r["event"] == "epoch"]
eb = [r for r in b if r["event"] == "epoch"]
runs = {r["run_id"] for r in b}
assert len(runs) == 1, runs                      # one run id across the stop and the resume
assert [r["event"] for r in b].count("resume") == 1
assert [r["epoch"] for r in eb] == [1, 2], eb    # nothing truncated: both epochs, in order
for x, y in zip(ea, eb):
    for k in ("loss", "train_acc", "test_loss", "test_acc"):
        assert x[k] == y[k], (k, x[k], y[k])
EOF

# A stop request as the evaluation at the end of epoch 1 starts: taken at once (not after the
# evaluation); the resumed run evaluates and reports epoch 1 first, then trains epoch 2, and ends
# bitwise where the uninterrupted run ends.
np2 "${run[@]}" --epochs 2 --checkpoint-dir "$tmp/sref" --metrics-file "$tmp/sref.json" >"$tmp/sref.log" 2>&1 \
  || bad "reference run: $(cat "$tmp/sref.log")"
np2 "${run[@]}" --epochs 2 --checkpoint-dir "$tmp/ev" --metrics-file "$tmp/ev.json" \
  --debug-fault stop-in-eval:1 >"$tmp/ev1.log" 2>&1
rc=$?
[ $rc -eq 3 ] && grep -q "stopped on request at step 6, during the evaluation of epoch 1 (it is done again on resume); checkpoint ckpt-epoch0001-step00000006.h5 written" "$tmp/ev1.log" \
  && ! grep -q "^epoch 1," "$tmp/ev1.log" \
  && ok "a stop during the evaluation is taken before it ends, with a checkpoint" || bad "stop in eval: exit $rc: $(cat "$tmp/ev1.log")"
np2 "${run[@]}" --epochs 2 --checkpoint-dir "$tmp/ev" --metrics-file "$tmp/ev.json" --resume auto >"$tmp/ev2.log" 2>&1
rc=$?
[ $rc -eq 0 ] && [ "$(grep -c "^epoch [12]," "$tmp/ev2.log")" -eq 2 ] \
  && grep -q "^epoch 1, .* ended after a resume (not timed)" "$tmp/ev2.log" \
  && h5diff "$tmp/sref/ckpt-epoch0002-step00000012.h5" "$tmp/ev/ckpt-epoch0002-step00000012.h5" /params /params >/dev/null \
  && ok "the resumed run evaluates epoch 1 again, then ends bitwise like the uninterrupted run" \
  || bad "resume after a stop in eval: exit $rc: $(cat "$tmp/ev2.log")"
/usr/bin/python3 - "$tmp/sref.json" "$tmp/ev.json" <<'EOF' && ok "the epoch figures after a stop in the evaluation equal the uninterrupted run's" || bad "eval-stop metrics: $(cat "$tmp/ev.json")"
import json, sys
a = [r for r in map(json.loads, open(sys.argv[1])) if r["event"] == "epoch"]
b = [r for r in map(json.loads, open(sys.argv[2])) if r["event"] == "epoch"]
assert [r["epoch"] for r in b] == [1, 2], b
assert b[0]["time_s"] is None  # not measured across the stop: null, not a made-up figure
for x, y in zip(a, b):
    for k in ("loss", "train_acc", "test_loss", "test_acc", "test_top5"):
        assert x[k] == y[k], (k, x[k], y[k])
EOF

# --- Messages that say what happened ------------------------------------------------------
"$bin" >"$tmp/bare.log" 2>&1
rc=$?
[ $rc -eq 2 ] && grep -q "^usage: alexnet" "$tmp/bare.log" && ok "a bare alexnet prints its usage (exit 2), it does not train" \
  || bad "bare alexnet: exit $rc: $(cat "$tmp/bare.log")"
"$bin" --help | grep -q "alexnet-torchvision" && ok "--help lists every model" || bad "--help model list"
"$bin" --print-config | grep -qx "bn-momentum = 0.9" && ok "printed configs carry no float noise" \
  || bad "print-config: $("$bin" --print-config | grep bn-momentum)"
for o in "--warmup-steps 3:--warmup-steps counts untimed steps of --benchmark" \
  "--steps 3:--steps counts the timed steps of --benchmark" \
  "--batch-size 4294967296:--batch-size must be in [1, 2147483647], got 4294967296" \
  "--batch-size 4294967297:--batch-size must be in [1, 2147483647], got 4294967297"; do
  # shellcheck disable=SC2086
  "$bin" ${o%%:*} --model lenet >"$tmp/msg.log" 2>&1
  rc=$?
  [ $rc -eq 2 ] && one_error "$tmp/msg.log" "${o#*:}" && ok "${o%%:*}: refused in one line" || bad "${o%%:*}: exit $rc: $(cat "$tmp/msg.log")"
done
"$bin" "${base[@]}" --resize 0 --lr 0.05 --batch-size 20000000 --epochs 1 >"$tmp/mem.log" 2>&1
rc=$?
[ $rc -eq 2 ] && one_error "$tmp/mem.log" "a batch of 20000000 per rank needs at least" "MiB of memory" \
  && ok "a batch too large for memory is refused before anything is allocated" || bad "huge batch: exit $rc: $(cat "$tmp/mem.log")"
grep -q "1 thread, conv" "$tmp/sref.log" && ok "one thread is \"1 thread\"" || bad "thread count wording: $(grep ctx "$tmp/sref.log")"
# --eval-only takes the dataset, its directory and normalisation from the checkpoint and needs no
# training split: an image-folder checkpoint (3 channels, ImageNet's statistics) evaluated with
# only --checkpoint, after the folder's train/ is gone.
maker=$(dirname "$bin")/tests/distnet_make_image_folder
if [ -x "$maker" ]; then
  "$maker" "$tmp/folder" 12 6 24 40 >/dev/null 2>&1 || bad "image folder maker"
  np2 --model lenet --dataset imagefolder --data-dir "$tmp/folder" --resize 28 --batch-size 40 \
    --epochs 1 --workers 1 --checkpoint-dir "$tmp/ifck" >"$tmp/if.log" 2>&1 || bad "image folder run: $(cat "$tmp/if.log")"
  rm -rf "$tmp/folder/train"
  "$bin" --eval-only --checkpoint "$tmp/ifck/ckpt-epoch0001-step00000003.h5" >"$tmp/ifeval.log" 2>&1
  rc=$?
  want=$(grep -oE "test acc [0-9.]+" "$tmp/if.log" | tail -1)
  [ $rc -eq 0 ] && grep -q "(no training split)" "$tmp/ifeval.log" && grep -q "$want" "$tmp/ifeval.log" \
    && ok "--eval-only takes the image folder from the checkpoint and reads only val/ ($want)" \
    || bad "eval-only adoption: exit $rc: $(cat "$tmp/ifeval.log")"
else
  echo "skip: --eval-only of an image-folder checkpoint: $maker is not built"
fi

# A data directory that exists but cannot be entered is not "missing train-images": as a user
# without the right to enter it (nobody), the run says so.
if command -v runuser >/dev/null && [ "$(id -u)" -eq 0 ]; then
  chmod 711 "$tmp"
  mkdir -p "$tmp/closed"
  cp /usr/share/datasets/fashion-mnist/* "$tmp/closed/"
  chmod 700 "$tmp/closed"
  runuser -u nobody -- "$bin" --model lenet --resize 0 --data-dir "$tmp/closed" --epochs 1 >"$tmp/closed.log" 2>&1
  rc=$?
  [ $rc -ne 0 ] && one_error "$tmp/closed.log" "$tmp/closed: cannot read the data directory of fashion-mnist: Permission denied" \
    && ok "a data directory that cannot be entered is named as such" || bad "closed data dir: exit $rc: $(cat "$tmp/closed.log")"
  chmod 700 "$tmp"
else
  echo "skip: a data directory that cannot be entered: needs root and runuser to act as another user"
fi

# --- Write failures ---------------------------------------------------------------------------
# The metrics file on a full disk (/dev/full): one line and exit 1 at the next step.
np2 "${run[@]}" --epochs 1 --metrics-file /dev/full >"$tmp/full.log" 2>&1
rc=$?
[ $rc -eq 1 ] && one_error "$tmp/full.log" "/dev/full: cannot write the metrics file: No space left on device" \
  && ok "metrics on a full disk: one line, exit 1" || bad "metrics /dev/full: exit $rc: $(cat "$tmp/full.log")"
# The timeline on a full disk: one line and a non-zero exit, never a silently cut file.
np2 "${run[@]}" --epochs 1 --timeline /dev/full >"$tmp/tlfull.log" 2>&1
rc=$?
[ $rc -ne 0 ] && one_error "$tmp/tlfull.log" "/dev/full: cannot write the timeline file: No space left on device" \
  && ok "timeline on a full disk: one line, exit $rc" || bad "timeline /dev/full: exit $rc: $(cat "$tmp/tlfull.log")"
# A full disk: the checkpoint directory on an 8 MiB tmpfs (in a mount namespace of this test)
# holding one 3.5 MB checkpoint; the next save fits, the one after does not. It is reported at
# that checkpoint, in one line; the run stops; the earlier checkpoints are intact.
"$bin" "${run[@]}" --epochs 1 --checkpoint-dir "$tmp/efull" --checkpoint-every 3steps >"$tmp/efull1.log" 2>&1
mkdir -p "$tmp/full"
if unshare -m true 2>/dev/null && command -v mount >/dev/null; then
  MPI_CMD="${mpi[*]}" unshare -m bash -c '
    set -u
    mount -t tmpfs -o size=8m tmpfs "$1/full" || exit 90
    cp "$1/efull/ckpt-epoch0001-step00000006.h5" "$1/full/"
    sum=$(md5sum <"$1/full/ckpt-epoch0001-step00000006.h5")
    "$2" "${@:3}" --epochs 3 --checkpoint-dir "$1/full" --resume auto --checkpoint-every 3steps >"$1/full.log" 2>&1
    echo "rc $?" >"$1/full.result"
    [ "$(md5sum <"$1/full/ckpt-epoch0001-step00000006.h5")" = "$sum" ] && echo intact >>"$1/full.result"
    ls -a "$1/full" >>"$1/full.result"
    umount "$1/full"
    # The last checkpoint of a run (at its end, step 12) on a full disk, 2 ranks: the ranks learn
    # of it together and leave with exit 1, no abort.
    mount -t tmpfs -o size=8m tmpfs "$1/full" || exit 90
    cp "$1/efull/ckpt-epoch0001-step00000006.h5" "$1/full/"
    $MPI_CMD -n 2 "$2" "${@:3}" --epochs 2 --checkpoint-dir "$1/full" --resume auto --checkpoint-every 3steps >"$1/full2.log" 2>&1
    echo "rc $?" >"$1/full2.result"
    ls -a "$1/full" >>"$1/full2.result"
    umount "$1/full"' _ "$tmp" "$bin" "${run[@]}"
  res=$(cat "$tmp/full.result" 2>/dev/null)
  grep -q "^rc 1$" <<<"$res" && grep -q "^intact$" <<<"$res" \
    && one_error "$tmp/full.log" "ckpt-epoch0002-step00000012.h5: checkpoint not written: No space left on device" \
      "the run stops at step 1" \
    && grep -q "ckpt-epoch0002-step00000009.h5" <<<"$res" && ! grep -q "step00000012\|tmp-" <<<"$res" \
    && ok "a full disk: one line at that checkpoint, the run stops, the earlier checkpoints intact" \
    || bad "full disk: $res: $(cat "$tmp/full.log")"
  res=$(cat "$tmp/full2.result" 2>/dev/null)
  grep -q "^rc 1$" <<<"$res" \
    && one_error "$tmp/full2.log" "ckpt-epoch0002-step00000012.h5: checkpoint not written: No space left on device" \
    && ! grep -qi "MPI_ABORT" "$tmp/full2.log" && grep -q "ckpt-epoch0002-step00000009.h5" <<<"$res" \
    && ok "the last checkpoint on a full disk: every rank exits 1 together, one line, no abort" \
    || bad "last checkpoint on a full disk: $res: $(cat "$tmp/full2.log")"
else
  echo "skip: full disk: cannot make a mount namespace here (unshare -m) or mount a tmpfs (mount), so no small file system to fill"
fi

echo "fault matrix: $pass passed, $fails failed"
[ "$fails" -eq 0 ]
