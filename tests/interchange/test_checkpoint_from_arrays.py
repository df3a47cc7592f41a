#!/usr/bin/python3
"""tools/distnet_torch.py without torch: its HDF5 writer and name tables, on numpy arrays named as
PyTorch names them (what from-torch does after torch.load), for every supported model.

For each of alexnet-torchvision, resnet18-torchvision, resnet18 (d2l) and googlenet (d2l):
random arrays -> checkpoint_from_arrays -> a checkpoint that distnet's own loader accepts
(distnet_torch_check --checkpoint, through load_checkpoint, which checks every tensor's presence
and shape) and whose logits equal those of the same weights handed over by distnet name; the
table holds exactly the model's tensors (its sums are `alexnet --print-shapes`'s totals);
arrays_from_checkpoint (to-torch's numpy side) gives back the same arrays bit for bit, in the
same order. The file has every root attribute docs/checkpoint-format.md lists, with its type,
Fletcher32 and row chunks on every dataset, zero momentum; `alexnet --eval-only --checkpoint`
and `alexnet --init-from` run with it. Wrong shapes, missing and extra tensors, non-finite values
and the wrong model are refused in one line naming the tensor, leaving no file behind.

  test_checkpoint_from_arrays.py ALEXNET DRIVER

Exit 77 (skipped) without numpy or h5py (Debian: python3-h5py).
"""
import os
import re
import subprocess
import sys
import tempfile

try:
    import h5py
    import numpy as np
except ImportError as e:  # pragma: no cover - depends on the machine
    print(f"skipped: {e}; install python3-h5py (launch/setup)")
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, os.path.join(ROOT, "tools"))
sys.path.insert(0, HERE)
import distnet_torch as dt  # noqa: E402
from tensor_files import distnet_logits  # noqa: E402

TOOL = os.path.join(ROOT, "tools", "distnet_torch.py")
CLASSES = 7
# Small inputs: each model still builds (alexnet-torchvision needs 63 or more).
CASES = [("alexnet-torchvision", (3, 67, 67)), ("resnet18-torchvision", (3, 32, 32)),
         ("resnet18", (1, 32, 32)), ("googlenet", (1, 32, 32))]

failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


def random_arrays(arch, shape, seed):
    """Weights by PyTorch name; running variances positive, num_batches_tracked an int64."""
    rng = np.random.default_rng(seed)
    out = {}
    for s in dt.specs_for(arch, shape[0], CLASSES):
        if s.kind == "count":
            out[s.torch] = np.array(0, dtype=np.int64)
        elif s.torch.endswith("running_var"):
            out[s.torch] = rng.uniform(0.5, 1.5, s.shape).astype(np.float32)
        else:
            fan_in = int(np.prod(s.shape[1:])) if len(s.shape) > 1 else 1
            out[s.torch] = (rng.standard_normal(s.shape) / np.sqrt(fan_in)).astype(np.float32)
    return out


def doc_attributes():
    """(name, type) of every row of docs/checkpoint-format.md's root attribute table that every
    checkpoint has (not those of best.h5 only)."""
    text = open(os.path.join(ROOT, "docs", "checkpoint-format.md")).read()
    table = text.split("## Attributes of the root group", 1)[1].split("\n\n")[1]
    rows = []
    for line in table.splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        if "`best.h5` only" in cells[2]:  # --keep-best's file, not a converted checkpoint
            continue
        for name in re.findall(r"`([a-z_]+)`", cells[0]):
            rows.append((name, cells[1]))
    return rows


def check_layout(path, arch, shape):
    attributes = doc_attributes()
    check(len(attributes) >= 17 and ("run_id", "string") in attributes,
          f"docs/checkpoint-format.md lists {len(attributes)} root attributes")
    with h5py.File(path, "r") as f:
        for name, kind in attributes:
            if name not in f.attrs:
                check(False, f"{arch}: root attribute {name} ({kind}) is missing")
                continue
            a = f.attrs.get_id(name)
            t = a.get_type()
            if kind.startswith("int64"):
                good = t.get_class() == h5py.h5t.INTEGER and t.get_size() == 8
            elif kind.startswith("float64"):
                good = t.get_class() == h5py.h5t.FLOAT and t.get_size() == 8
            else:  # "string": fixed length, UTF-8 (distnet refuses variable-length strings)
                good = (t.get_class() == h5py.h5t.STRING and not t.is_variable_str() and
                        t.get_cset() == h5py.h5t.CSET_UTF8)
            count = a.shape[0] if a.shape else 1
            want = int(re.search(r"\[(\d+)\]", kind).group(1)) if "[" in kind else 1
            check(good and count == want, f"{arch}: attribute {name} is {kind}")
        a = f.attrs
        check(list(a["input_shape"]) == list(shape) and int(a["classes"]) == CLASSES and
              int(a["step"]) == 0 and int(a["format_version"]) == 1,
              f"{arch}: input_shape, classes, step 0, format 1")
        check(re.fullmatch(r"[0-9a-f]{16}", a["run_id"].decode()) is not None,
              f"{arch}: run_id is 16 hex digits")
        config = a["config"].decode()
        model = dt.ARCHS[arch].model
        check(f"model = {model}\n" in config and f"resize = {shape[1]}\n" in config and
              "normalize-mean = " in config, f"{arch}: config names model, resize, normalisation")
        bad = []
        for s in dt.specs_for(arch, shape[0], CLASSES):
            if s.kind == "count":
                continue
            rows = max(1, min(s.shape[0], (256 << 20) // (int(np.prod(s.shape[1:])) * 4)))
            p, m = "params/" + dt.h5_path(s.distnet), "momentum/" + dt.h5_path(s.distnet)
            if s.kind == "param":
                if m not in f or f[m].shape != s.shape or np.any(f[m][...] != 0):
                    bad.append(f"/{m} is not a zero tensor of {dt.dims(s.shape)}")
                    continue
            elif m in f:
                bad.append(f"/{m} exists for a running statistic")
            for name in (p, m) if s.kind == "param" else (p,):
                d = f[name]
                if not (d.dtype == np.dtype("<f4") and d.fletcher32 and
                        d.chunks == (rows,) + s.shape[1:]):
                    bad.append(f"/{name}: {d.dtype}, chunks {d.chunks}, fletcher32 "
                               f"{d.fletcher32}")
    check(not bad, f"{arch}: every dataset float32, row chunks, Fletcher32; momentum zero" +
          (f": {len(bad)} not, first {bad[0]}" if bad else ""))


def totals(alexnet, model, shape):
    """(parameters, running statistics) as `alexnet --print-shapes` counts them."""
    out = subprocess.run([alexnet, "--print-shapes", "--model", model, "--dataset", "synthetic",
                          "--synthetic-shape", "x".join(map(str, shape)), "--synthetic-classes",
                          str(CLASSES), "--resize", "0"], capture_output=True, text=True,
                         check=True).stdout
    params = int(re.search(r"total parameters: ([\d,]+)", out).group(1).replace(",", ""))
    stats = re.search(r"running statistics \(not trained\): ([\d,]+)", out)
    return params, int(stats.group(1).replace(",", "")) if stats else 0


def refusals(path, arch, shape, arrays, tmp):
    """Each bad state_dict is refused in one line naming what is wrong; no file is left."""
    model = dt.ARCHS[arch].model
    params = [s for s in dt.specs_for(arch, shape[0], CLASSES) if s.kind == "param"]
    conv1, fc_weight, fc_bias = params[0], params[-2], params[-1]
    out = os.path.join(tmp, "refused.h5")

    def refused(bad, expect, label, **kw):
        try:
            dt.checkpoint_from_arrays(bad, out, model, **kw)
            check(False, f"{arch}: {label} was accepted")
        except dt.ConversionError as e:
            msg = str(e)
            check(all(x in msg for x in expect) and "\n" not in msg,
                  f"{arch}: {label} refused: {msg[:160]}")
        check(not os.path.exists(out) and not [n for n in os.listdir(tmp) if ".tmp-" in n],
              f"{arch}: nothing left after refusing {label}")

    bad = dict(arrays)
    bad[conv1.torch] = np.zeros(conv1.shape[:1] + (shape[0] + 1,) + conv1.shape[2:], np.float32)
    refused(bad, [conv1.torch, dt.dims(conv1.shape), conv1.distnet], "a wrong channel count",
            input_shape=shape)
    bad = dict(arrays)
    bad[fc_bias.torch] = np.zeros((3,), np.float32)  # classes come from the weight: 7
    refused(bad, [fc_bias.torch, f"has shape 3, expected {CLASSES}"], "a bias of the wrong size")
    bad = {k: v for k, v in arrays.items() if k != fc_weight.torch}
    bad["extra.weight"] = np.zeros((2, 2), np.float32)
    refused(bad, ["missing 1", fc_weight.torch, "extra.weight"], "a missing and an extra tensor")
    bad = dict(arrays)
    bad[conv1.torch] = arrays[conv1.torch].copy()
    bad[conv1.torch].flat[5] = np.inf
    refused(bad, [conv1.torch, "non-finite"], "an infinity")
    other = next(a for a in dt.ARCHS if a != arch)
    try:
        dt.arrays_from_checkpoint(path, other)
        check(False, f"{arch}: to-torch --arch {other} was accepted")
    except dt.ConversionError as e:
        check(model in str(e), f"{arch}: to-torch --arch {other} refused: {e}")


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    alexnet, driver = sys.argv[1:3]
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    with tempfile.TemporaryDirectory() as tmp:
        for i, (model, shape) in enumerate(CASES):
            arch = dt.MODEL_ARCH[model]
            arrays = random_arrays(arch, shape, seed=10 + i)
            path = os.path.join(tmp, model + ".h5")
            got = dt.checkpoint_from_arrays(arrays, path, model, input_shape=shape)
            check(got == (arch, shape, CLASSES), f"{arch}: written as {got}")
            check_layout(path, arch, shape)

            specs = dt.specs_for(arch, shape[0], CLASSES)
            want = (sum(int(np.prod(s.shape)) for s in specs if s.kind == "param"),
                    sum(int(np.prod(s.shape)) for s in specs if s.kind == "stat"))
            have = totals(alexnet, model, shape)
            check(want == have, f"{arch}: the table's sums {want} are the model's {have}")

            x = np.random.default_rng(i).uniform(-1, 1, (2,) + shape).astype(np.float32)
            run_dir = os.path.join(tmp, "run")
            logits, log = distnet_logits(driver, model, run_dir, x, checkpoint=path)
            check(logits is not None and np.all(np.isfinite(logits)),
                  f"{arch}: distnet loads it (load_checkpoint) and computes finite logits"
                  + ("" if logits is not None else ": " + log.strip()))
            if model != "alexnet-torchvision":  # the 220 MB of AlexNet once is enough
                by_name = {s.distnet: arrays[s.torch] for s in specs if s.distnet}
                direct, log = distnet_logits(driver, model, run_dir, x, weights=by_name,
                                             classes=CLASSES)
                check(direct is not None and logits is not None and
                      np.array_equal(direct, logits),
                      f"{arch}: the same logits as the weights handed over by distnet name")

            back_arch, back = dt.arrays_from_checkpoint(path)
            same = (back_arch == arch and list(back) == [s.torch for s in specs] and
                    all(back[k].dtype == arrays[k].dtype and back[k].shape == arrays[k].shape and
                        back[k].tobytes() == arrays[k].tobytes() for k in arrays))
            check(same, f"{arch}: to-torch's arrays are the originals bit for bit, in order")
            refusals(path, arch, shape, arrays, tmp)

            if model == "alexnet-torchvision":
                common = ["--dataset", "synthetic", "--synthetic-shape",
                          "x".join(map(str, shape)), "--synthetic-classes", str(CLASSES),
                          "--synthetic-test-size", "4"]
                run = subprocess.run([alexnet, "--eval-only", "--checkpoint", path] + common,
                                     capture_output=True, text=True, timeout=300)
                check(run.returncode == 0 and "test acc" in run.stdout,
                      f"alexnet --eval-only --checkpoint accepts it (exit {run.returncode})"
                      + ("" if run.returncode == 0 else ": " + run.stderr.strip()))
                run = subprocess.run([alexnet, "--model", model, "--init-from", path,
                                      "--resize", str(shape[1]), "--synthetic-train-size", "4",
                                      "--batch-size", "4", "--epochs", "1"] + common,
                                     capture_output=True, text=True, timeout=300)
                check(run.returncode == 0 and "epoch 1" in run.stdout,
                      f"alexnet --init-from accepts it (exit {run.returncode})"
                      + ("" if run.returncode == 0 else ": " + run.stderr.strip()))
                cfg = os.path.join(tmp, "config.ini")
                with h5py.File(path, "r") as f, open(cfg, "w") as out:
                    out.write(f.attrs["config"].decode())
                run = subprocess.run([alexnet, "--config", cfg, "--data-dir", tmp,
                                      "--print-config"], capture_output=True, text=True)
                check(run.returncode == 0 and "dataset = imagefolder" in run.stdout and
                      "normalize-std = 0.229,0.224,0.225" in run.stdout,
                      "alexnet --config reads its config attribute back"
                      + ("" if run.returncode == 0 else ": " + run.stderr.strip()))
            os.unlink(path)

        # The command line without torch: usage errors exit 2, a wrong checkpoint 1.
        run = subprocess.run([sys.executable, TOOL, "from-torch", "in.pt", "out.h5", "--model",
                              "lenet"], capture_output=True, text=True)
        check(run.returncode == 2 and "no PyTorch mapping for model 'lenet'" in run.stderr,
              f"from-torch --model lenet: exit {run.returncode}, {run.stderr.strip()}")
        run = subprocess.run([sys.executable, TOOL, "mapping", "--model", "resnet18-torchvision"],
                             capture_output=True, text=True)
        check(run.returncode == 0 and re.search(r"layer2\.0\.downsample\.1\.running_var +"
                                                r"/params/layer2_0/downsample_1/running_var +128",
                                                run.stdout) is not None,
              "mapping --model resnet18-torchvision prints the table")
    if failures:
        print(f"{len(failures)} check(s) failed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
