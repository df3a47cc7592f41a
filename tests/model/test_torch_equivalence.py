#!/usr/bin/env python3
"""distnet against PyTorch: the same weights give the same logits and loss, and one SGD step the
same parameters, for torchvision's ResNet-18 (the zoo's resnet18-torchvision) and a GoogLeNet
Inception stage (tests/model/defs/inception-stage.yaml), on 1 and 3 ranks.

The PyTorch side is built from its own description (tools/torch_models.py, written from the
papers' and d2l's definitions; torchvision is not needed). Its weights are random, written by name
for distnet's test driver (tests/model/torch_check.cpp), which runs the step under mpiexec and
writes back the logits, the loss and every tensor. ResNet-18 is full of batch-norm: on 3 ranks it
runs with --sync-bn, whose statistics are those of the whole batch, as PyTorch's in one process.

  python3 tests/model/test_torch_equivalence.py DRIVER MPIEXEC [MPIEXEC FLAGS...]

Exit 77 (skipped) where torch cannot be imported: install it with `pip install torch`
(the CPU build is enough).
"""
import os
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as e:  # pragma: no cover - depends on the machine
    print(f"skipped: PyTorch is not installed ({e}); install it with `pip install torch`")
    sys.exit(77)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
from torch_models import InceptionStage, ResNet18, distnet_names  # noqa: E402
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "interchange"))
# The driver's tensor files; read_tensors and write_tensors are imported from here by others too.
from tensor_files import read_tensors, write_tensors  # noqa: E402,F401

TOLERANCE = 1e-5  # relative, per tensor: max |distnet - torch| / max |torch|


def relative(got, want):
    want = np.asarray(want, dtype=np.float64)
    return float(np.max(np.abs(np.asarray(got, dtype=np.float64) - want)) /
                 max(np.max(np.abs(want)), 1e-30))


def check(label, model, definition, shape, classes, driver, mpiexec, ranks, sync_bn, lr=0.1,
          expect_equal=True):
    torch.manual_seed(5)
    # Batch-norm's affine parameters and running statistics away from their initial 1 and 0, so
    # that a mix-up of gamma and beta, or of the statistics, shows.
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    n = 6
    x = torch.rand(n, *shape) * 2 - 1
    y = torch.randint(0, classes, (n,))
    names = distnet_names(model)
    state = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
    tensors = {names[k]: v for k, v in state.items() if k in names}
    tensors.update(input=x.numpy(), labels=y.numpy().astype(np.float32),
                   classes=np.array([classes], dtype=np.float32))

    model.train()
    logits = model(x)
    loss = F.cross_entropy(logits, y)  # the mean over the batch: distnet's 1 / global batch
    model.zero_grad()
    loss.backward()
    params = dict(model.named_parameters())
    after = {k: (p - lr * p.grad).detach().numpy() for k, p in params.items()}
    grads = {k: p.grad.numpy() for k, p in params.items()}

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = os.path.join(tmp, "in"), os.path.join(tmp, "out")
        os.mkdir(src)
        os.mkdir(dst)
        write_tensors(src, tensors)
        cmd = mpiexec + ["-n", str(ranks), driver, "--model", definition, "--in", src,
                         "--out", dst, "--lr", str(lr)] + (["--sync-bn"] if sync_bn else [])
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if run.returncode != 0:
            print(f"{label}: the driver failed ({run.returncode}):\n{run.stdout}{run.stderr}")
            return False
        got = read_tensors(dst)

    worst = {"logits": relative(got["logits"], logits.detach().numpy()),
             "loss": relative(got["loss"], [loss.item()])}
    worst_param = worst_grad = 0.0
    for k, want in after.items():
        worst_param = max(worst_param, relative(got[names[k]], want))
        worst_grad = max(worst_grad, relative(got["grad:" + names[k]], grads[k]))
    worst["parameters after the step"] = worst_param
    print(f"{label}, {ranks} rank(s){' --sync-bn' if sync_bn else ''}: " +
          ", ".join(f"{k} {v:.2e}" for k, v in worst.items()) +
          f" (gradients {worst_grad:.2e}); {len(after)} tensors")
    if not expect_equal:
        # Per-rank statistics of 2-image slices are not the batch's: the comparison must see it.
        ok = worst["logits"] > 1e-2
        print(f"{label}: per-rank batch-norm differs from PyTorch's whole-batch statistics, "
              f"as it must" if ok else f"{label}: per-rank batch-norm matched; the test is blind")
        return ok
    ok = all(v <= TOLERANCE for v in worst.values())
    if not ok:
        print(f"{label}: a difference above {TOLERANCE:g} relative")
    return ok


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    driver, mpiexec = sys.argv[1], sys.argv[2:]
    torch.set_num_threads(2)
    here = os.path.dirname(os.path.abspath(__file__))
    ok = True
    for ranks in (1, 3):
        torch.manual_seed(1)
        ok &= check("ResNet-18 (torchvision)", ResNet18(3, 10), "resnet18-torchvision",
                    (3, 64, 64), 10, driver, mpiexec, ranks, sync_bn=ranks > 1)
        torch.manual_seed(2)
        ok &= check("Inception stage (GoogLeNet)", InceptionStage(3, 10),
                    os.path.join(here, "defs", "inception-stage.yaml"), (3, 16, 16), 10, driver,
                    mpiexec, ranks, sync_bn=False)
    torch.manual_seed(1)
    ok &= check("ResNet-18 (torchvision), per-rank batch-norm", ResNet18(3, 10),
                "resnet18-torchvision", (3, 64, 64), 10, driver, mpiexec, 3, sync_bn=False,
                expect_equal=False)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
