#!/usr/bin/env python3
"""--label-smoothing and --clip-grad-norm against PyTorch.

1. The fused softmax cross-entropy alone (distnet_torch_check --loss-only) against
   F.cross_entropy(logits, y, label_smoothing=eps): the loss and d(loss)/d(logits), for several
   eps, including 0.
2. One SGD step of a GoogLeNet Inception stage (tests/model/defs/inception-stage.yaml) with a
   smoothed loss and the summed gradient clipped by its global norm, on 1 and 3 ranks, against
   PyTorch's cross_entropy(label_smoothing=eps), clip_grad_norm_(max_norm) and the step: the norm
   before clipping, the clipped gradients and the parameters after the step; once with MAX below
   the norm (clipped) and once above it (left alone).

Every figure within 1e-5 relative (max |distnet - torch| / max |torch|, per tensor).

  python3 tests/model/test_torch_smoothing_clip.py DRIVER MPIEXEC [MPIEXEC FLAGS...]

Exit 77 (skipped) where torch cannot be imported.
"""
import os
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
except ImportError as e:  # pragma: no cover - depends on the machine
    print(f"skipped: PyTorch is not installed ({e}); install it with `pip install torch`")
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools"))
sys.path.insert(0, HERE)
from torch_models import InceptionStage, distnet_names  # noqa: E402
from test_torch_equivalence import read_tensors, relative, write_tensors  # noqa: E402

TOLERANCE = 1e-5


def run_driver(cmd, tensors):
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = os.path.join(tmp, "in"), os.path.join(tmp, "out")
        os.mkdir(src)
        os.mkdir(dst)
        write_tensors(src, tensors)
        run = subprocess.run(cmd + ["--in", src, "--out", dst], capture_output=True, text=True,
                             timeout=600)
        if run.returncode != 0:
            print(f"the driver failed ({run.returncode}):\n{run.stdout}{run.stderr}")
            return None
        return {k: np.array(v) for k, v in read_tensors(dst).items()}


def check_loss(driver):
    ok = True
    torch.manual_seed(3)
    n, classes = 32, 10
    logits = (torch.randn(n, classes) * 4).requires_grad_()
    y = torch.randint(0, classes, (n,))
    for eps in (0.0, 0.1, 0.3, 0.9):
        loss = F.cross_entropy(logits, y, label_smoothing=eps)
        (grad,) = torch.autograd.grad(loss, logits)
        got = run_driver([driver, "--loss-only", "--label-smoothing", str(eps)],
                         {"logits": logits.detach().numpy(), "labels": y.numpy().astype("f4")})
        if got is None:
            return False
        e_loss = relative(got["loss"], [loss.item()])
        e_grad = relative(got["dlogits"], grad.numpy())
        print(f"softmax cross-entropy, label smoothing {eps}: loss {e_loss:.2e}, "
              f"dlogits {e_grad:.2e} relative")
        ok &= e_loss <= TOLERANCE and e_grad <= TOLERANCE
    return ok


def check_step(driver, mpiexec, ranks, eps, clip_ratio, lr=0.1):
    """clip_ratio: --clip-grad-norm as a multiple of the gradient's norm (< 1: clipped)."""
    torch.manual_seed(2)
    model = InceptionStage(3, 10)
    n, classes = 6, 10
    x = torch.rand(n, 3, 16, 16) * 2 - 1
    y = torch.randint(0, classes, (n,))
    names = distnet_names(model)
    tensors = {names[k]: v.detach().numpy().copy() for k, v in model.state_dict().items()
               if k in names}
    tensors.update(input=x.numpy(), labels=y.numpy().astype(np.float32),
                   classes=np.array([classes], dtype=np.float32))

    model.train()
    loss = F.cross_entropy(model(x), y, label_smoothing=eps)
    model.zero_grad()
    loss.backward()
    params = dict(model.named_parameters())
    norm = float(torch.sqrt(sum((p.grad.double() ** 2).sum() for p in params.values())))
    max_norm = clip_ratio * norm
    total = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
    grads = {k: p.grad.numpy().copy() for k, p in params.items()}
    after = {k: (p - lr * p.grad).detach().numpy() for k, p in params.items()}

    got = run_driver(mpiexec + ["-n", str(ranks), driver, "--model",
                                os.path.join(HERE, "defs", "inception-stage.yaml"), "--lr",
                                str(lr), "--label-smoothing", str(eps), "--clip-grad-norm",
                                repr(max_norm)], tensors)
    if got is None:
        return False
    worst = {"loss": relative(got["loss"], [loss.item()]),
             "norm": relative(got["grad_norm"], [total.item()])}
    worst["clipped gradients"] = max(relative(got["grad:" + names[k]], g)
                                     for k, g in grads.items())
    worst["parameters after the step"] = max(relative(got[names[k]], w)
                                             for k, w in after.items())
    clipped = "clipped" if clip_ratio < 1 else "not clipped"
    print(f"Inception stage, {ranks} rank(s), label smoothing {eps}, --clip-grad-norm "
          f"{max_norm:.4g} (norm {total.item():.4g}, {clipped}): " +
          ", ".join(f"{k} {v:.2e}" for k, v in worst.items()))
    ok = all(v <= TOLERANCE for v in worst.values())
    if not ok:
        print(f"a difference above {TOLERANCE:g} relative")
    return ok


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    driver, mpiexec = sys.argv[1], sys.argv[2:]
    torch.set_num_threads(2)
    ok = check_loss(driver)
    for ranks in (1, 3):
        ok &= check_step(driver, mpiexec, ranks, eps=0.1, clip_ratio=0.25)
    ok &= check_step(driver, mpiexec, 1, eps=0.0, clip_ratio=4.0)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
