#!/usr/bin/env python3
"""PyTorch CPU baseline for ResNet-18, to set beside distnet_model_bench on the same machine:
forward + loss + backward + SGD step on random data in memory, the same batch, input and
threads. The modules come from tools/torch_models.py (the zoo's definitions, written for
PyTorch): --model resnet18 is d2l's, resnet18-torchvision torchvision's.

  python3 bench/pytorch_cpu_resnet18.py --model resnet18 --batch 32 --channels 1 --size 96
  ./build/distnet_model_bench --model resnet18 --batch 32 --resize 96
"""
import argparse
import os
import statistics
import sys
import time
import warnings

warnings.filterwarnings("ignore", message="Failed to initialize NumPy")
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from torch_models import D2lResNet18, ResNet18  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=["resnet18", "resnet18-torchvision"], default="resnet18")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--channels", type=int, default=1)
    p.add_argument("--size", type=int, default=96)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--channels-last", action="store_true")
    a = p.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    make = D2lResNet18 if a.model == "resnet18" else ResNet18
    model = make(a.channels, a.classes)
    x = torch.randn(a.batch, a.channels, a.size, a.size)
    y = torch.randint(0, a.classes, (a.batch,))
    if a.channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    model.train()
    loss_fn = nn.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()

    for _ in range(a.warmup):
        step()
    ms = []
    for _ in range(a.iters):
        t0 = time.perf_counter()
        step()
        ms.append((time.perf_counter() - t0) * 1e3)
    med = statistics.median(ms)
    print(f"torch_version {torch.__version__}")
    print(f"threads {torch.get_num_threads()}")
    print(f"model {a.model} channels_last {a.channels_last}")
    print(f"batch {a.batch} input {a.channels}x{a.size}x{a.size}")
    print(f"images_per_s {a.batch / med * 1e3:.2f}")
    print(f"step_ms_median {med:.2f}")
    print(f"step_ms_min {min(ms):.2f}")


if __name__ == "__main__":
    main()
