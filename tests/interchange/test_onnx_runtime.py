#!/usr/bin/env python3
"""alexnet-export against onnxruntime: for every model of the zoo (and tests/interchange/defs,
the ops the zoo does not use), a checkpoint -- two of them trained by `alexnet` itself, the rest
random weights with batch-norm's statistics and affine parameters and every bias moved away from
their initial values -- is exported, checked by onnx.checker, and run by onnxruntime on the
same input distnet's own forward pass saw: real Fashion-MNIST test images after distnet's
evaluation transform (tests/interchange/onnx_check.cpp; a 3-channel model gets three images as
its channels), and two random inputs. The logits must agree within TOLERANCE, relative:
max |onnxruntime - distnet| / max |distnet|. Also checked: the graph's input and output names and
shapes, the initializers' names (the checkpoint's tensors), and the metadata.

  python3 tests/interchange/test_onnx_runtime.py ALEXNET ALEXNET-EXPORT DRIVER

Exit 77 (skipped) where onnxruntime cannot be imported: install it with
`pip install onnxruntime` (launch/setup puts it in .pyenv).
"""
import glob
import os
import subprocess
import sys
import tempfile
import time

try:
    import numpy as np
    import onnxruntime as ort
except ImportError as e:  # pragma: no cover - depends on the machine
    print(f"skipped: onnxruntime cannot be imported ({e}); install it with "
          "`pip install onnxruntime`")
    sys.exit(77)
try:
    import onnx
except ImportError:  # the C++ export ran ONNX's checker already
    onnx = None
try:
    import h5py
except ImportError:
    h5py = None

from tensor_files import read_tensors  # noqa: E402  (beside this file: the driver's tensor files)

TOLERANCE = 1e-5
IMAGES, RANDOM = 8, 2
HERE = os.path.dirname(os.path.abspath(__file__))
FASHION = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
           "Bag", "Ankle boot"]

# label, model, input C x H x W, how the checkpoint is made ("train": by `alexnet`, else random),
# normalisation (mean, std) or None, export flags.
CASES = [
    ("lenet", "lenet", (1, 28, 28), "train", (0.286, 0.353), []),
    ("lenet opset 11, batch 10", "lenet", (1, 28, 28), "train", (0.286, 0.353),
     ["--opset", "11", "--batch", str(IMAGES + RANDOM)]),
    ("lenet opset 17", "lenet", (1, 28, 28), "train", (0.286, 0.353), ["--opset", "17"]),
    ("alexnet", "alexnet", (1, 224, 224), "random", (0.286, 0.353), []),
    ("alexnet-bn", "alexnet-bn", (1, 96, 96), "random", None, []),
    ("alexnet-nopad", "alexnet-nopad", (1, 224, 224), "random", None, []),
    ("alexnet-torchvision", "alexnet-torchvision", (3, 224, 224), "random",
     (0.45, 0.226), []),
    ("vgg11", "vgg11", (1, 64, 64), "random", None, []),
    ("nin", "nin", (1, 96, 96), "random", None, []),
    ("resnet18", "resnet18", (1, 64, 64), "train", None, []),
    ("resnet18-torchvision", "resnet18-torchvision", (3, 64, 64), "random", None, []),
    ("googlenet", "googlenet", (1, 96, 96), "random", None, []),
    ("every-op (tests/interchange/defs)", os.path.join(HERE, "defs", "every-op.yaml"),
     (1, 32, 32), "random", None, []),
]


def run(cmd, cwd):
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout}{r.stderr}")
    return r.stdout


def checkpoint(tools, model, shape, how, norm, work, cache):
    """A checkpoint of `model`, made once per (model, shape, how, norm)."""
    key = (model, shape, how, norm)
    if key in cache:
        return cache[key]
    alexnet, _, driver = tools
    d = os.path.join(work, f"ckpt{len(cache)}")
    os.mkdir(d)
    norm_flags = []
    if how == "train":
        # One short epoch: batch-norm's running statistics are those training leaves.
        if norm:
            norm_flags = ["--normalize-mean", str(norm[0]), "--normalize-std", str(norm[1])]
        run([alexnet, "--model", model, "--resize", str(shape[1]), "--epochs", "1",
             "--train-limit", "64", "--test-limit", "32", "--batch-size", "32",
             "--checkpoint-dir", d, "--device", "cpu"] + norm_flags, work)
        path = sorted(glob.glob(os.path.join(d, "ckpt-*.h5")))[-1]
    else:
        if norm:
            norm_flags = ["--mean", str(norm[0]), "--std", str(norm[1])]
        path = os.path.join(d, "random.h5")
        run([driver, "make", "--model", model, "--input", ",".join(map(str, shape)),
             "--classes", "10", "--out", path] + norm_flags, work)
    if model == "lenet":  # class names beside it go into the metadata
        with open(os.path.join(d, "classes.txt"), "w") as f:
            f.write("".join(n + "\n" for n in FASHION))
    cache[key] = path
    return path


def check_model_file(path, ckpt, model, shape, norm, batch):
    """The file as a consumer sees it; returns a list of problems."""
    problems = []
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    (inp,), (out,) = sess.get_inputs(), sess.get_outputs()
    n = batch if batch else "N"
    if inp.name != "input" or list(inp.shape) != [n, *shape]:
        problems.append(f"input {inp.name} {inp.shape}, expected input {[n, *shape]}")
    if out.name != "logits" or list(out.shape) != [n, 10]:
        problems.append(f"output {out.name} {out.shape}, expected logits {[n, 10]}")
    meta = sess.get_modelmeta().custom_metadata_map
    want = {"model": model, "classes": "10", "resize": str(shape[1]),
            "input-shape": ",".join(map(str, shape)),
            "normalize-mean": str(norm[0]) if norm else "",
            "normalize-std": str(norm[1]) if norm else ""}
    if model == "lenet":
        want["class-names"] = "".join(c + "\n" for c in FASHION)
    for k, v in want.items():
        if meta.get(k) != v:
            problems.append(f"metadata {k} = {meta.get(k)!r}, expected {v!r}")
    if onnx is not None:
        m = onnx.load(path)
        onnx.checker.check_model(m, full_check=True)  # raises on a bad model
        if h5py is not None:
            names = set()
            with h5py.File(ckpt, "r") as f:
                f["params"].visititems(
                    lambda k, v: names.add(k.replace("/", ".")) if isinstance(v, h5py.Dataset)
                    else None)
            got = {t.name for t in m.graph.initializer}
            if got != names:
                problems.append(f"initializers {sorted(got ^ names)} differ from the "
                                "checkpoint's tensors")
    return sess, problems


def main():
    if len(sys.argv) != 4:
        print(__doc__)
        return 2
    tools = sys.argv[1:4]
    export = tools[1]
    ok = True
    results = []
    cache = {}
    with tempfile.TemporaryDirectory() as work:
        for i, (label, model, shape, how, norm, flags) in enumerate(CASES):
            t0 = time.time()
            try:
                ckpt = checkpoint(tools, model, shape, how, norm, work, cache)
                path = os.path.join(work, f"model{i}.onnx")
                run([export, "--checkpoint", ckpt, "--output", path] + flags, work)
                batch = int(flags[flags.index("--batch") + 1]) if "--batch" in flags else 0
                sess, problems = check_model_file(path, ckpt, model, shape, norm, batch)
                out = os.path.join(work, f"distnet{i}")
                os.mkdir(out)
                run([tools[2], "run", "--checkpoint", ckpt, "--count", str(IMAGES),
                     "--random", str(RANDOM), "--out", out], work)
                t = read_tensors(out)
                got = sess.run(["logits"], {"input": t["input"]})[0]
                want = t["logits"].astype(np.float64)
                err = float(np.max(np.abs(got - want)) / max(np.max(np.abs(want)), 1e-30))
                # Real images: logits that differ between samples (not a dead network).
                spread = float(np.max(np.std(want[:IMAGES], axis=0)))
                if not spread > 5e-3 * np.max(np.abs(want)):
                    problems.append(f"the logits hardly depend on the image ({spread:.2e})")
                if not err <= TOLERANCE:
                    problems.append(f"logits differ by {err:.2e} relative (limit {TOLERANCE:g})")
                results.append((label, err, os.path.getsize(path), time.time() - t0))
                print(f"{label:36s} {shape[0]}x{shape[1]}x{shape[2]:<4d} max rel. error "
                      f"{err:.2e}  {os.path.getsize(path) / 2**20:7.1f} MiB  "
                      f"{time.time() - t0:5.1f} s", flush=True)
            except Exception as e:  # one line per failing case, then the next
                problems = [str(e).strip()]
            for p in problems:
                print(f"{label}: FAIL: {p}", flush=True)
                ok = False
    print(f"{len(results)} of {len(CASES)} exports agree with distnet within {TOLERANCE:g}"
          if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
