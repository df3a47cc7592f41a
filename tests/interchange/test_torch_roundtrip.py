#!/usr/bin/env python3
"""tools/distnet_torch.py against PyTorch itself: torchvision's AlexNet and ResNet-18 and the d2l
modules of tools/torch_models.py, with random weights, through the command line both ways.

For each: the module's state_dict (torch.save) -> from-torch -> a distnet checkpoint -> distnet's
evaluation-mode logits of a batch (distnet_torch_check --forward-only --checkpoint, which loads it
through load_checkpoint(path, model, weights_only=true) as --init-from and --eval-only do) equal
PyTorch's eval-mode logits within 1e-5 relative (max |distnet - torch| / max |torch|); then
to-torch -> the very tensors of the original state_dict, bit for bit, in its order, which a fresh
module loads with strict=True. ResNet-18's batch-norm affine parameters and running statistics
are random too (a mix-up of mean and variance, or of gamma and beta, shows in the logits), and
its state_dict goes in wrapped as a training script saves it ({"state_dict": ...} with DDP's
"module." prefix). Bad files are refused by the command line: exit 1, one line naming the tensor.

  test_torch_roundtrip.py DRIVER

Exit 77 (skipped) without torch or torchvision: `pip install torch torchvision` (CPU builds).
"""
import contextlib
import io
import os
import subprocess
import sys
import tempfile
import time

try:
    import numpy as np
    import torch
    import torch.nn as nn
    import torchvision
except ImportError as e:  # pragma: no cover - depends on the machine
    print(f"skipped: {e}; install PyTorch and torchvision (`pip install torch torchvision`, the "
          f"CPU builds are enough) and point DISTNET_TORCH_PYTHON at that python")
    sys.exit(77)
try:
    import h5py  # noqa: F401  (the converter writes checkpoints with it)
except ImportError as e:  # pragma: no cover
    print(f"skipped: {e}; `pip install h5py` beside torch")
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, os.path.join(ROOT, "tools"))
sys.path.insert(0, HERE)
import distnet_torch as dt  # noqa: E402
from tensor_files import distnet_logits, relative  # noqa: E402
from torch_models import D2lGoogLeNet, D2lResNet18  # noqa: E402

TOOL = os.path.join(ROOT, "tools", "distnet_torch.py")
TOLERANCE = 1e-5
CLASSES = 10

failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what, flush=True)
    if not ok:
        failures.append(what)


def tool(*args, process=False):
    """The command line: as a program of its own (`process`), else its main() in this process
    (the same code, without starting Python and importing torch again)."""
    args = [str(a) for a in args]
    if process:
        return subprocess.run([sys.executable, TOOL] + args, capture_output=True, text=True,
                              timeout=600)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = dt.main(args)
    return subprocess.CompletedProcess(args, rc, out.getvalue(), err.getvalue())


def randomize_bn(model):
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)


def roundtrip(label, make, model, shape, tmp, wrap=False, process=False):
    """One module through from-torch, distnet's forward and to-torch; returns the relative
    logit error (or None)."""
    t0 = time.time()
    torch.manual_seed(3)
    net = make()
    randomize_bn(net)
    net.eval()
    x = torch.rand(4, *shape) * 2 - 1
    with torch.no_grad():
        want = net(x).numpy()
    state = net.state_dict()
    arch = dt.MODEL_ARCH[model]
    specs = dt.specs_for(arch, shape[0], CLASSES)
    check([s.torch for s in specs] == list(state) and
          all(tuple(state[s.torch].shape) == s.shape for s in specs),
          f"{label}: the {arch} table is the module's state_dict, names, order and shapes")

    pt, h5, back_pt = (os.path.join(tmp, n) for n in ("in.pt", "ckpt.h5", "back.pt"))
    saved = {"state_dict": {"module." + k: v for k, v in state.items()}} if wrap else state
    torch.save(saved, pt)
    run = tool("from-torch", pt, h5, "--model", model, "--input", ",".join(map(str, shape)),
               process=process)
    check(run.returncode == 0, f"{label}: from-torch{' (wrapped, module.)' if wrap else ''}: "
                               f"{(run.stdout + run.stderr).strip()}")
    if run.returncode != 0:
        return None
    got, log = distnet_logits(DRIVER, model, os.path.join(tmp, "run"), x.numpy(), checkpoint=h5)
    check(got is not None, f"{label}: distnet loads the checkpoint" +
          ("" if got is not None else ": " + log.strip()))
    if got is None:
        return None
    err = relative(got, want)
    check(err <= TOLERANCE, f"{label}: distnet's logits against torch's: {err:.2e} relative "
                            f"(max |torch| {np.abs(want).max():.3g}, tolerance {TOLERANCE:g})")

    run = tool("to-torch", h5, back_pt, process=process)
    check(run.returncode == 0, f"{label}: to-torch: {(run.stdout + run.stderr).strip()}")
    if run.returncode != 0:
        return err
    back = torch.load(back_pt, map_location="cpu", weights_only=True)
    same = list(back) == list(state) and all(
        back[k].dtype == v.dtype and back[k].shape == v.shape and
        back[k].numpy().tobytes() == v.numpy().tobytes() for k, v in state.items())
    check(same, f"{label}: to-torch gives the original {len(state)} tensors bit for bit, "
                f"in order")
    fresh = make()
    try:
        fresh.load_state_dict(back, strict=True)
        fresh.eval()
        with torch.no_grad():
            again = fresh(x).numpy()
        check(np.array_equal(again, want), f"{label}: a fresh module loads it (strict=True) and "
                                           f"gives the same logits")
    except RuntimeError as e:
        check(False, f"{label}: load_state_dict(strict=True): {str(e).splitlines()[0]}")
    for p in (pt, h5, back_pt):
        os.unlink(p)
    print(f"     {label}: {time.time() - t0:.1f} s", flush=True)
    return err


def refusals(tmp):
    """from-torch on bad files: exit 1, one line naming the tensor (and the expected shape)."""
    torch.manual_seed(4)
    state = torchvision.models.resnet18(num_classes=CLASSES).state_dict()
    pt, h5 = os.path.join(tmp, "bad.pt"), os.path.join(tmp, "bad.h5")

    def refused(obj, expect, label, *extra):
        torch.save(obj, pt)
        run = tool("from-torch", pt, h5, "--model", "resnet18-torchvision", *extra)
        lines = run.stderr.strip().splitlines()
        check(run.returncode == 1 and len(lines) == 1 and all(x in lines[0] for x in expect) and
              not os.path.exists(h5),
              f"from-torch refuses {label}: exit {run.returncode}: {run.stderr.strip()[:200]}")

    bad = dict(state)
    bad["layer3.0.conv2.weight"] = torch.zeros(256, 128, 3, 3)
    refused(bad, ["layer3.0.conv2.weight has shape 256x128x3x3, expected 256x256x3x3",
                  "layer3_0.conv2.weight"], "a wrong shape")
    bad = {k: v for k, v in state.items() if k != "layer4.1.bn2.running_var"}
    bad["head.weight"] = torch.zeros(3)
    refused(bad, ["missing 1", "layer4.1.bn2.running_var", "head.weight"],
            "a missing and an extra tensor")
    refused(state, ["fc.weight has shape 10x512, expected 1000x512"],
            "10 classes given as 1000", "--classes", "1000")
    refused([1, 2], ["list, not a state_dict"], "a list")
    run = tool("from-torch", pt, h5, "--model", "resnet18-torchvision", "--input", "3,64")
    check(run.returncode == 2 and "--input must be C,H,W" in run.stderr,
          f"from-torch --input 3,64: exit {run.returncode}: {run.stderr.strip()}")


def main():
    global DRIVER
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    DRIVER = sys.argv[1]
    torch.set_num_threads(2)
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}")
    errors = {}
    with tempfile.TemporaryDirectory() as tmp:
        # torchvision's adaptive pool makes 127x127 work (its pool3 output 3x3, pooled to 6x6).
        # AlexNet goes through the command line as a program; the others through its main().
        cases = [
            ("torchvision AlexNet", lambda: torchvision.models.alexnet(num_classes=CLASSES),
             "alexnet-torchvision", (3, 127, 127), False, True),
            ("torchvision ResNet-18", lambda: torchvision.models.resnet18(num_classes=CLASSES),
             "resnet18-torchvision", (3, 64, 64), True, False),
            ("d2l ResNet-18", lambda: D2lResNet18(1, CLASSES), "resnet18", (1, 64, 64), False,
             False),
            ("d2l GoogLeNet", lambda: D2lGoogLeNet(1, CLASSES), "googlenet", (1, 64, 64), False,
             False),
        ]
        for label, make, model, shape, wrap, process in cases:
            errors[label] = roundtrip(label, make, model, shape, tmp, wrap, process)
        refusals(tmp)
    print("max relative logit error: " +
          ", ".join(f"{k} {v:.2e}" if v is not None else f"{k} -" for k, v in errors.items()))
    if failures:
        print(f"{len(failures)} check(s) failed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
