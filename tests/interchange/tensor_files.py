"""The tensors.txt / tensors.bin pair that distnet_torch_check reads and writes
(tests/model/torch_check.cpp), and how the interchange tests run it."""
import os
import subprocess

import numpy as np


def write_tensors(path, tensors):
    with open(os.path.join(path, "tensors.txt"), "w") as index, \
            open(os.path.join(path, "tensors.bin"), "wb") as data:
        for name, t in tensors.items():
            a = np.ascontiguousarray(t, dtype="<f4")
            index.write(" ".join([name] + [str(d) for d in a.shape]) + "\n")
            data.write(a.tobytes())


def read_tensors(path):
    out = {}
    with open(os.path.join(path, "tensors.txt")) as index, \
            open(os.path.join(path, "tensors.bin"), "rb") as data:
        for line in index:
            name, *dims = line.split()
            shape = [int(d) for d in dims]
            count = int(np.prod(shape)) if shape else 1
            out[name] = np.frombuffer(data.read(4 * count), dtype="<f4").reshape(shape)
    return out


def distnet_logits(driver, model, tmp, x, checkpoint=None, weights=None, classes=None):
    """Evaluation-mode logits of `x` (N x C x H x W) from distnet_torch_check --forward-only, with
    the weights of `checkpoint` (loaded by load_checkpoint; classes: the checkpoint's) or
    `weights` (distnet name -> array, and `classes`). Returns (logits or None, the driver's
    output)."""
    src, dst = os.path.join(tmp, "in"), os.path.join(tmp, "out")
    os.makedirs(src, exist_ok=True)
    os.makedirs(dst, exist_ok=True)
    tensors = dict(weights or {})
    tensors["input"] = x
    if classes is not None:
        tensors["classes"] = np.array([classes], dtype=np.float32)
    write_tensors(src, tensors)
    cmd = [driver, "--model", model, "--in", src, "--out", dst, "--forward-only"]
    if checkpoint:
        cmd += ["--checkpoint", checkpoint]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if run.returncode != 0:
        return None, run.stdout + run.stderr
    return read_tensors(dst)["logits"], run.stdout + run.stderr


def relative(got, want):
    """max |got - want| / max |want|, in float64."""
    want = np.asarray(want, dtype=np.float64)
    return float(np.max(np.abs(np.asarray(got, dtype=np.float64) - want)) /
                 max(np.max(np.abs(want)), 1e-30))
