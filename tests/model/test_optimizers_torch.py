#!/usr/bin/env python3
"""distnet's optimizers against PyTorch over several steps: --optimizer adamw against
torch.optim.AdamW, sgd (momentum, weight decay, --no-decay-bias-bn) against torch.optim.SGD, and
lars against a reference written here from the paper (You, Gitman, Ginsburg 2017, "Large Batch
Training of Convolutional Networks"; torch has no LARS). A small network with every role of
tensor the optimizers tell apart (convolution and dense weights, biases, batch-norm's gamma and
beta: tests/model/defs/opt-small.yaml and its twin OptSmall below), the same weights and batch,
one step per learning rate of a changing schedule, on 1 and 3 ranks (3 with --sync-bn), with
parameter groups (--freeze-through, --lr-mult) in some cases. distnet's side is
tests/model/torch_check.cpp --optimizer, which runs the trainer's Optimizer.

(A small network rather than ResNet-18: over several steps a deep batch-normalised network
amplifies the last-bit differences of its gradients far beyond any optimizer's error; the
optimizers are what is compared here, the layers are compared in test_torch_equivalence.py.)

  python3 tests/model/test_optimizers_torch.py DRIVER MPIEXEC [MPIEXEC FLAGS...]

Exit 77 (skipped) where torch cannot be imported.
"""
import fnmatch
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

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools"))
sys.path.insert(0, HERE)
from torch_models import distnet_names  # noqa: E402
from test_torch_equivalence import read_tensors, relative, write_tensors  # noqa: E402

TOLERANCE = 1e-5  # relative, per tensor: max |distnet - torch| / max |torch|
DEFINITION = os.path.join(HERE, "defs", "opt-small.yaml")


class OptSmall(nn.Module):
    """tests/model/defs/opt-small.yaml in PyTorch."""

    def __init__(self, channels, classes):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(16)
        self.fc = nn.Linear(16, 32)
        self.out = nn.Linear(32, classes)

    def forward(self, x):
        x = F.relu(self.bn2(self.conv2(self.bn1(F.relu(self.conv1(x))))))
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self.out(F.relu(self.fc(x)))


def lars_reference(params, state, lr, momentum, wd, trust):
    """One LARS step from the paper: per tensor, local = trust |w| / (|g| + wd |w|) (1 when a
    norm is 0); v = momentum v + lr local (g + wd w); w -= v. Biases and batch-norm parameters
    (adapt False) take plain momentum steps without decay: v = momentum v + lr g."""
    with torch.no_grad():
        for p, factor, adapt in params:
            g = p.grad
            rate = lr * factor
            if adapt:
                wn = float(torch.linalg.vector_norm(p.double()))
                gn = float(torch.linalg.vector_norm(g.double()))
                local = trust * wn / (gn + wd * wn) if wn > 0 and gn > 0 else 1.0
                step = (g + wd * p) * float(rate * local)
            else:
                step = g * float(rate)
            v = state.setdefault(p, torch.zeros_like(p))
            v.mul_(momentum).add_(step)
            p.sub_(v)


def run_case(label, case, driver, mpiexec, ranks):
    torch.manual_seed(11)
    model = OptSmall(3, 10)
    with torch.no_grad():  # batch-norm away from 1 and 0, so a mix-up shows
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    n, classes = 12, 10
    x = torch.rand(n, 3, 16, 16) * 2 - 1
    y = torch.randint(0, classes, (n,))
    names = distnet_names(model)
    state = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
    tensors = {names[k]: v for k, v in state.items() if k in names}
    tensors.update(input=x.numpy(), labels=y.numpy().astype(np.float32),
                   classes=np.array([classes], dtype=np.float32))
    before = {k: p.detach().clone() for k, p in model.named_parameters()}

    # The groups, as distnet makes them from layer names (a tensor's layer: its name less the
    # last part; --freeze-through: every layer up to the named one, in model order).
    layer_order = []
    for k, _ in model.named_parameters():
        layer = names[k].rpartition(".")[0]
        if layer not in layer_order:
            layer_order.append(layer)
    frozen = set()
    if case.get("freeze"):
        frozen = set(layer_order[:layer_order.index(case["freeze"]) + 1])
    mults = case.get("mults", {})
    groups = []  # (param, lr factor, is a weight: adapted and decayed)
    for k, p in model.named_parameters():
        layer = names[k].rpartition(".")[0]
        if layer in frozen:
            continue
        factor = 1.0
        for pattern, f in mults.items():
            if fnmatch.fnmatchcase(layer, pattern):
                factor = f
        weight = not names[k].endswith((".bias", ".gamma", ".beta"))
        groups.append((p, factor, weight))

    opt, lrs, wd = case["optimizer"], case["lrs"], case["weight_decay"]
    no_decay = case.get("no_decay", False)
    torch_opt = None
    if opt in ("adamw", "sgd"):
        pg = [{"params": [p], "factor": f, "weight_decay": wd if (w or not no_decay) else 0.0}
              for p, f, w in groups]
        if opt == "adamw":
            torch_opt = torch.optim.AdamW(pg, lr=lrs[0], betas=(case["beta1"], case["beta2"]),
                                          eps=case["eps"], foreach=False)
        else:
            torch_opt = torch.optim.SGD(pg, lr=lrs[0], momentum=case["momentum"], foreach=False)
    lars_state = {}
    model.train()
    # PyTorch's own forward and backward on its parameters at each step; the update applies
    # distnet's gradients of that step (read after distnet's run), so that the parameters after
    # the steps differ by the optimizers' arithmetic alone. (The gradients of the two agree to
    # ~1e-6, but AdamW's update divides by |g|: an element whose gradient is rounding noise moves
    # by ~lr either way, and would measure the layers' rounding, not the optimizer.)
    def torch_steps(distnet_grads):
        worst_grad = 0.0
        for t, lr in enumerate(lrs):
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            model.zero_grad()
            loss.backward()
            with torch.no_grad():
                for k, p in model.named_parameters():
                    g = distnet_grads[f"grad{t}:" + names[k]]
                    worst_grad = max(worst_grad, relative(g, p.grad.numpy()))
                    p.grad.copy_(torch.from_numpy(np.array(g)))
            if torch_opt is not None:
                for g in torch_opt.param_groups:
                    g["lr"] = lr * g["factor"]
                torch_opt.step()
            else:
                lars_reference(groups, lars_state, lr, case["momentum"], wd, case["trust"])
        return logits, loss, worst_grad

    args = ["--optimizer", opt, "--lrs", ",".join(repr(v) for v in lrs),
            "--weight-decay", repr(wd)]
    for key, flag in (("momentum", "--momentum"), ("beta1", "--beta1"), ("beta2", "--beta2"),
                      ("eps", "--eps"), ("trust", "--trust"), ("freeze", "--freeze-through")):
        if key in case:
            args += [flag, str(case[key])]
    if mults:
        args += ["--lr-mult", ",".join(f"{p}={f!r}" for p, f in mults.items())]
    if no_decay:
        args.append("--no-decay-bias-bn")
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = os.path.join(tmp, "in"), os.path.join(tmp, "out")
        os.mkdir(src)
        os.mkdir(dst)
        write_tensors(src, tensors)
        cmd = mpiexec + ["-n", str(ranks), driver, "--model", DEFINITION, "--in", src,
                         "--out", dst] + args + (["--sync-bn"] if ranks > 1 else [])
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if run.returncode != 0:
            print(f"{label}: the driver failed ({run.returncode}):\n{run.stdout}{run.stderr}")
            return False
        got = read_tensors(dst)
    logits, loss, worst_grad = torch_steps(got)

    worst_param = worst_update = 0.0
    worst_logits = relative(got["logits"], logits.detach().numpy())
    worst_loss = relative(got["loss"], [loss.item()])
    moved = 0
    for k, p in model.named_parameters():
        want = p.detach().numpy()
        worst_param = max(worst_param, relative(got[names[k]], want))
        d_want = want - before[k].numpy()
        if np.max(np.abs(d_want)) > 0:
            moved += 1
            worst_update = max(worst_update,
                               relative(got[names[k]] - before[k].numpy(), d_want))
        elif not np.array_equal(got[names[k]], before[k].numpy()):
            print(f"{label}: {names[k]} is frozen in torch but moved in distnet")
            return False
    total = len(list(model.parameters()))
    print(f"{label}, {len(lrs)} steps, {ranks} rank(s){' --sync-bn' if ranks > 1 else ''}: "
          f"logits {worst_logits:.2e}, loss {worst_loss:.2e}, gradients {worst_grad:.2e}, "
          f"parameters {worst_param:.2e}, updates {worst_update:.2e} "
          f"({moved} of {total} tensors updated)")
    ok = max(worst_param, worst_logits, worst_loss) <= TOLERANCE
    if not ok:
        print(f"{label}: a difference above {TOLERANCE:g} relative")
    return ok


CASES = [
    ("AdamW", {"optimizer": "adamw", "lrs": [1e-3, 2e-3, 5e-4], "weight_decay": 0.05,
               "beta1": 0.9, "beta2": 0.99, "eps": 1e-8}),
    ("AdamW --no-decay-bias-bn, frozen conv1, out x3, bn* x0.5",
     {"optimizer": "adamw", "lrs": [1e-3, 2e-3, 5e-4], "weight_decay": 0.1, "beta1": 0.8,
      "beta2": 0.999, "eps": 1e-6, "no_decay": True, "freeze": "conv1",
      "mults": {"out": 3.0, "bn*": 0.5}}),
    ("LARS (reference from the paper)",
     {"optimizer": "lars", "lrs": [0.5, 1.0, 0.25], "weight_decay": 5e-4, "momentum": 0.9,
      "trust": 0.02}),
    ("LARS, frozen conv1, out x3, bn* x0.5",
     {"optimizer": "lars", "lrs": [0.5, 1.0, 0.25], "weight_decay": 5e-4, "momentum": 0.9,
      "trust": 0.02, "freeze": "conv1", "mults": {"out": 3.0, "bn*": 0.5}}),
    ("SGD momentum --no-decay-bias-bn",
     {"optimizer": "sgd", "lrs": [0.05, 0.1, 0.02], "weight_decay": 1e-3, "momentum": 0.9,
      "no_decay": True}),
]


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    driver, mpiexec = sys.argv[1], sys.argv[2:]
    torch.set_num_threads(2)
    ok = True
    for ranks in (1, 3):
        for label, case in CASES:
            ok &= run_case(label, case, driver, mpiexec, ranks)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
