#!/usr/bin/env python3
"""PyTorch CPU baseline for the d2l.ai AlexNet, to compare distnet against.

Times forward+backward+SGD step on random in-memory data, then splits the
time per layer. Output is one figure per line so runs diff cleanly.
"""
import argparse, json, os, statistics, time, warnings
# Keep stdout/stderr clean for diffing: numpy is not needed, and the hook
# warning describes exactly the layer-00 behaviour handled below.
warnings.filterwarnings("ignore", message="Failed to initialize NumPy")
warnings.filterwarnings("ignore", message="Full backward hook is firing")
import torch
import torch.nn as nn


def alexnet(channels, classes, size):
    feats = nn.Sequential(
        nn.Conv2d(channels, 96, 11, stride=4), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(96, 256, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(256, 384, 3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 384, 3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Flatten())
    # Derive the flatten width instead of hard-coding 6400, so --size works.
    with torch.no_grad():
        flat = feats(torch.zeros(1, channels, size, size)).shape[1]
    return nn.Sequential(
        *feats,
        nn.Linear(flat, 4096), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(4096, classes))


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--channels", type=int, default=1)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--json", action="store_true", help="also print one JSON line")
    a = p.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = alexnet(a.channels, a.classes, a.size)
    x = torch.randn(a.batch, a.channels, a.size, a.size)
    y = torch.randint(0, a.classes, (a.batch,))
    if a.channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    model.train()  # dropout active, as in real training
    loss_fn = nn.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss

    # Warmup lets oneDNN pick/cache primitives and the allocator settle.
    for _ in range(a.warmup):
        step()
    ms = []
    for _ in range(a.iters):
        t0 = time.perf_counter()
        step()
        ms.append((time.perf_counter() - t0) * 1e3)
    med = statistics.median(ms)

    # Per-layer split via module hooks + time.perf_counter (not torch.profiler):
    # CPU execution is synchronous, so wall-clock between hooks is the layer's
    # cost, and we get exactly one number per nn.Module, matching distnet layers.
    # Backward hooks fire when a module's grad_input is ready; the time since the
    # previous backward hook is charged to that module (loss/autograd glue
    # included in the first one). Timed in a separate pass so hook overhead does
    # not distort the throughput figures above.
    names = [f"{i:02d}_{type(m).__name__}" for i, m in enumerate(model)]
    fwd = {n: 0.0 for n in names}
    bwd = {n: 0.0 for n in names}
    mark = [0.0]

    def hooks(n):
        def pre(m, inp): mark[0] = time.perf_counter()
        def post(m, inp, out): fwd[n] += time.perf_counter() - mark[0]
        def bpost(m, gi, go):
            t = time.perf_counter(); bwd[n] += t - mark[0]; mark[0] = t
        return pre, post, bpost

    hs = []
    for n, m in zip(names, model):
        pre, post, bpost = hooks(n)
        hs += [m.register_forward_pre_hook(pre), m.register_forward_hook(post),
               m.register_full_backward_hook(bpost)]
    # The input needs no grad (as in training), so layer 00's hook fires before
    # its weight grad is computed; whatever runs after the last hook is charged
    # to layer 00 below.
    for _ in range(a.iters):
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        mark[0] = time.perf_counter()
        loss.backward()
        bwd[names[0]] += time.perf_counter() - mark[0]
    for h in hs:
        h.remove()

    print(f"torch_version {torch.__version__}")
    print(f"threads {torch.get_num_threads()}")
    print(f"mkldnn_available {torch.backends.mkldnn.is_available()}")
    print(f"channels_last {a.channels_last}")
    print(f"batch {a.batch}")
    print(f"input {a.channels}x{a.size}x{a.size}")
    print(f"iters {a.iters}")
    print(f"images_per_s {a.batch / med * 1e3:.2f}")
    print(f"step_ms_median {med:.2f}")
    print(f"step_ms_min {min(ms):.2f}")
    print(f"step_ms_max {max(ms):.2f}")
    print("# per-layer ms per iteration (hooks + perf_counter; last layer bwd includes loss backward)")
    for n in names:
        print(f"layer {n} fwd_ms {fwd[n] / a.iters * 1e3:.2f} bwd_ms {bwd[n] / a.iters * 1e3:.2f}")
    tf, tb = sum(fwd.values()), sum(bwd.values())
    print(f"layer_total fwd_ms {tf / a.iters * 1e3:.2f} bwd_ms {tb / a.iters * 1e3:.2f}")
    if a.json:
        print(json.dumps({
            "torch": torch.__version__, "threads": torch.get_num_threads(),
            "mkldnn": torch.backends.mkldnn.is_available(),
            "channels_last": a.channels_last, "batch": a.batch,
            "channels": a.channels, "size": a.size, "classes": a.classes,
            "images_per_s": round(a.batch / med * 1e3, 2),
            "step_ms_median": round(med, 2), "step_ms_min": round(min(ms), 2),
            "step_ms_max": round(max(ms), 2),
            "fwd_ms": {n: round(v / a.iters * 1e3, 2) for n, v in fwd.items()},
            "bwd_ms": {n: round(v / a.iters * 1e3, 2) for n, v in bwd.items()}}))


if __name__ == "__main__":
    main()
