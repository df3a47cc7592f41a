#!/usr/bin/env python3
"""PyTorch GPU baseline for distnet's `alexnet`, the other side of a distnet-vs-PyTorch comparison.

  compute  synthetic data created once on the device; forward + loss + backward + SGD step timed
           per batch size, contiguous (NCHW) and channels_last, PyTorch's fastest settings
           (cudnn.benchmark, TF32 unless --math fp32). The best memory format counts.
  e2e      real Fashion-MNIST as the d2l notebooks train it: IDX files, 28->224 bilinear resize
           per sample on the CPU, a shuffling DataLoader with workers, batch 128; images/s over
           the epoch including data loading, then the training loss and accuracy.
  ratio    distnet's JSON lines (--metrics-file) against this script's JSON lines: distnet/pytorch
           per batch size (compute and e2e can do the same with --compare FILE).

Output is one figure per line, plus one JSON line per result ({"impl":"pytorch",...}) so that a
run's stdout can be saved and fed to `ratio`. --device cpu only smoke-tests the script.
"""
import argparse, gzip, json, math, os, statistics, struct, sys, time, warnings
# numpy is not needed; keep stderr clean when it is not installed.
warnings.filterwarnings("ignore", message="Failed to initialize NumPy")
import torch
import torch.nn as nn
import torch.nn.functional as F

PROG = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "pytorch_gpu_alexnet.py"
FORMATS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}


def fail(msg, code):
    """One line on stderr and an exit code: 2 usage, 1 a runtime failure (as distnet)."""
    print(f"{PROG}: error: {msg}", file=sys.stderr)
    sys.exit(code)


# ----------------------------------------------------------------------------------------------
# The network: exactly distnet's zoo entry "alexnet" (src/model/zoo.cpp). Note the first
# convolution has no padding there (d2l's MXNet AlexNet; d2l's PyTorch version pads it by 1):
# at 224x224 both give 96x54x54, so every later shape and the 6400-wide flatten are the same.

def alexnet(channels=1, classes=10, size=224):
    feats = nn.Sequential(
        nn.Conv2d(channels, 96, 11, stride=4, padding=0), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(96, 256, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(256, 384, 3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 384, 3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Flatten())
    with torch.no_grad():  # 6400 at 224x224, derived so the definition stays honest
        flat = feats(torch.zeros(1, channels, size, size)).shape[1]
    return nn.Sequential(
        *feats,
        nn.Linear(flat, 4096), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(4096, classes))


def init_weights(model, how):
    """'xavier': distnet's default, MXNet Xavier(uniform, avg, magnitude 2.24), biases zero:
    U(-b, b) with b = sqrt(2.24 / ((fan_in + fan_out) / 2)). 'torch': PyTorch's own defaults."""
    if how == "torch":
        return
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                rf = m.weight[0][0].numel()  # kernel area (1 for Linear)
                fan_in, fan_out = m.weight.shape[1] * rf, m.weight.shape[0] * rf
                b = math.sqrt(2.24 / ((fan_in + fan_out) / 2))
                m.weight.uniform_(-b, b)
                m.bias.zero_()


def make_model(a, device, fmt):
    torch.manual_seed(a.seed)
    model = alexnet()
    init_weights(model, a.init)
    model = model.to(device, memory_format=FORMATS[fmt])
    model.train()  # dropout active, as in training
    opt = torch.optim.SGD(model.parameters(), lr=a.lr, momentum=a.momentum,
                          weight_decay=a.weight_decay)
    return model, opt


# ----------------------------------------------------------------------------------------------
# Device set-up and the header every mode prints.

def set_up(a):
    if a.device == "cuda":
        if not torch.cuda.is_available():
            fail(f"--device cuda but torch.cuda.is_available() is False (torch {torch.__version__}, "
                 f"built for CUDA {torch.version.cuda}); use --device cpu for a smoke test", 2)
        device = torch.device("cuda")
        torch.backends.cudnn.benchmark = True
        tf32 = a.math == "tf32"
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        name = torch.cuda.get_device_name(0)
        cudnn = torch.backends.cudnn.version()
    else:
        device = torch.device("cpu")
        if a.threads:
            torch.set_num_threads(a.threads)
        name = f"{torch.get_num_threads()} threads"
        cudnn = None
    info = {"torch": torch.__version__, "cuda": torch.version.cuda, "cudnn": cudnn,
            "device": a.device, "device_name": name, "math": a.math if a.device == "cuda" else "fp32"}
    print(f"torch_version {torch.__version__}")
    print(f"device {a.device} ({name})")
    if a.device == "cuda":
        print(f"cuda {torch.version.cuda} cudnn {cudnn} cudnn_benchmark True math {a.math} "
              f"(matmul.allow_tf32 {torch.backends.cuda.matmul.allow_tf32}, "
              f"cudnn.allow_tf32 {torch.backends.cudnn.allow_tf32})")
    else:
        print("note: --device cpu only smoke-tests this script; CPU figures are not the GPU "
              "comparison (bench/pytorch_cpu_alexnet.py is the CPU baseline)")
    n = sum(p.numel() for p in alexnet().parameters())
    print(f"network alexnet (distnet zoo, conv1 pad 0), input 1x224x224, 10 classes, "
          f"{n:,} parameters")
    print(f"sgd lr {a.lr} momentum {a.momentum} weight_decay {a.weight_decay}, cross-entropy, "
          f"init {a.init}, seed {a.seed}")
    return device, info


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


# ----------------------------------------------------------------------------------------------
# compute: synthetic data on the device.

def time_compute(a, device, batch, fmt):
    model, opt = make_model(a, device, fmt)
    loss_fn = nn.CrossEntropyLoss()
    g = torch.Generator(device=device).manual_seed(a.seed + 1)
    x = torch.rand(batch, 1, 224, 224, device=device, generator=g)
    x = x.contiguous(memory_format=FORMATS[fmt])
    y = torch.randint(0, 10, (batch,), device=device, generator=g)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()

    # Warm-up: cudnn.benchmark tries its algorithms on the first steps; the allocator settles.
    for _ in range(a.warmup):
        step()
    runs = []
    for _ in range(a.repeats):
        sync(device)
        t0 = time.perf_counter()
        for _ in range(a.steps):
            step()
        sync(device)
        runs.append(batch * a.steps / (time.perf_counter() - t0))
    del model, opt, x, y
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return runs


def run_compute(a):
    device, info = set_up(a)
    print(f"compute: synthetic data on the device; {a.warmup} warm-up steps, then {a.repeats} "
          f"repeats of {a.steps} timed steps; median images/s")
    best = {}
    for batch in a.batch:
        results = []
        for fmt in a.formats:
            try:
                runs = time_compute(a, device, batch, fmt)
            except torch.cuda.OutOfMemoryError:
                print(f"compute batch {batch} {fmt}: out of device memory, skipped")
                torch.cuda.empty_cache()
                continue
            med = statistics.median(runs)
            results.append((fmt, med, runs))
            print(f"compute batch {batch} {fmt:<13} {info['math']}: {med:.1f} images/s "
                  f"(runs {', '.join(f'{r:.1f}' for r in runs)}), step {batch / med * 1e3:.2f} ms")
        if not results:
            continue
        top = max(results, key=lambda r: r[1])
        for fmt, med, runs in results:
            print(json.dumps({
                "impl": "pytorch", "mode": "compute", **info, "batch": batch,
                "memory_format": fmt, "images_per_s": round(med, 3),
                "images_per_s_runs": [round(r, 3) for r in runs],
                "step_ms": round(batch / med * 1e3, 4), "warmup": a.warmup, "steps": a.steps,
                "repeats": a.repeats, "lr": a.lr, "momentum": a.momentum,
                "weight_decay": a.weight_decay, "best": fmt == top[0]}))
        best[batch] = (top[1], top[0])
        print(f"best batch {batch}: {top[0]} {top[1]:.1f} images/s")
    if not best:
        fail("no batch size could be timed", 1)
    if a.device == "cuda":
        print("distnet side: build/alexnet --benchmark --device cuda --model alexnet --resize 224 "
              f"--batch-size B --warmup-steps {a.warmup} --steps {a.steps} --metrics-file FILE "
              f"(B in {','.join(map(str, a.batch))})")
    if a.compare:
        compare(read_distnet(a.compare), {("compute", b): v for b, v in best.items()})


# ----------------------------------------------------------------------------------------------
# e2e: Fashion-MNIST from IDX files, resized per sample on the CPU, through a DataLoader.

def read_idx(data_dir, stem, magic):
    for name in (stem, stem + ".gz"):
        path = os.path.join(data_dir, name)
        if os.path.exists(path):
            break
    else:
        fail(f"{os.path.join(data_dir, stem)}[.gz]: no such file", 1)
    try:
        with (gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")) as f:
            raw = f.read()
    except OSError as e:
        fail(f"{path}: {e}", 1)
    dims = magic & 0xFF
    if len(raw) < 4 + 4 * dims or struct.unpack(">I", raw[:4])[0] != magic:
        fail(f"{path}: not an IDX file of the expected kind (magic {magic:#010x})", 1)
    shape = struct.unpack(f">{dims}I", raw[4:4 + 4 * dims])
    need = math.prod(shape)
    body = raw[4 + 4 * dims:]
    if len(body) < need:
        fail(f"{path}: truncated: header says {'x'.join(map(str, shape))} ({need + 4 + 4 * dims} "
             f"bytes), found {len(raw)} bytes", 1)
    return torch.frombuffer(bytearray(body[:need]), dtype=torch.uint8).reshape(shape)


class ResizedIdx(torch.utils.data.Dataset):
    """uint8 28x28 -> float [0,1] 1x224x224, bilinear (half-pixel centres, no rounding back to
    uint8: what distnet's CPU transform does), one sample at a time in the loader's worker."""
    def __init__(self, images, labels, size):
        self.images, self.labels, self.size = images, labels.long(), size

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        x = self.images[i].float().div_(255).view(1, 1, *self.images.shape[1:])
        x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return x[0], self.labels[i]


def load_split(a, prefix):
    images = read_idx(a.data_dir, f"{prefix}-images-idx3-ubyte", 0x00000803)
    labels = read_idx(a.data_dir, f"{prefix}-labels-idx1-ubyte", 0x00000801)
    if len(images) != len(labels):
        fail(f"{a.data_dir}: {prefix}: {len(images)} images but {len(labels)} labels", 1)
    return ResizedIdx(images, labels, 224)


def loader(a, ds, device, shuffle):
    g = torch.Generator().manual_seed(a.seed)
    return torch.utils.data.DataLoader(
        ds, batch_size=a.batch, shuffle=shuffle, num_workers=a.workers, generator=g,
        pin_memory=device.type == "cuda", drop_last=False)


def run_e2e(a):
    device, info = set_up(a)
    train = load_split(a, "train")
    if len(train) == 0:
        fail(f"{a.data_dir}: the training set is empty", 1)
    per_epoch = math.ceil(len(train) / a.batch)
    total = a.epochs * per_epoch if not a.steps else min(a.steps, a.epochs * per_epoch)
    warmup = min(a.warmup, total - 1)
    if warmup != a.warmup:
        print(f"note: warm-up reduced to {warmup} steps (only {total} steps in all)")
    print(f"e2e: {a.data_dir}, {len(train)} training images, resize 28->224 per sample on the "
          f"CPU with torch.nn.functional.interpolate (bilinear, align_corners=False, float), "
          f"DataLoader batch {a.batch}, shuffle, {a.workers} workers, "
          f"pin_memory {device.type == 'cuda'}, memory format {a.format}")
    print(f"e2e: {a.epochs} epochs of {per_epoch} steps" +
          (f", stopping after {total} steps" if a.steps else "") +
          f"; the first {warmup} steps are not timed")
    model, opt = make_model(a, device, a.format)
    loss_fn = nn.CrossEntropyLoss()
    mf = FORMATS[a.format]
    done = 0
    all_images, all_time = 0, 0.0
    loss_sum = correct = seen = None
    for epoch in range(1, a.epochs + 1):
        # Sums stay on the device so the loop never waits for the GPU.
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        seen = timed_images = 0
        wait = 0.0
        sync(device)
        t0 = time.perf_counter()
        it = iter(loader(a, train, device, shuffle=True))
        while done < total:
            tw = time.perf_counter()
            try:
                x, y = next(it)
            except StopIteration:
                break
            wait += time.perf_counter() - tw
            x = x.to(device, non_blocking=True).contiguous(memory_format=mf)
            y = y.to(device, non_blocking=True)
            opt.zero_grad(set_to_none=True)
            out = model(x)
            loss = loss_fn(out, y)
            loss.backward()
            opt.step()
            with torch.no_grad():
                loss_sum += loss.detach() * len(y)
                correct += (out.argmax(1) == y).sum()
            seen += len(y)
            done += 1
            if done == warmup:  # restart the clock after the warm-up steps
                sync(device)
                t0, wait = time.perf_counter(), 0.0
            elif done > warmup:
                timed_images += len(y)
        sync(device)
        dt = time.perf_counter() - t0
        del it
        ips = timed_images / dt if timed_images else 0.0
        all_images += timed_images
        all_time += dt if timed_images else 0.0
        loss_v, acc = loss_sum.item() / max(seen, 1), correct.item() / max(seen, 1)
        partial = seen < len(train)
        print(f"epoch {epoch}, loss {loss_v:.3f}, train acc {acc:.3f}, {ips:.1f} examples/sec on "
              f"{a.device}" + (f" ({seen} of {len(train)} images)" if partial else "") +
              f", loader wait {wait:.2f} s of {dt:.2f} s")
        print(json.dumps({
            "impl": "pytorch", "mode": "e2e", "event": "epoch", **info, "epoch": epoch,
            "batch": a.batch, "workers": a.workers, "memory_format": a.format,
            "resize": "torch.nn.functional.interpolate bilinear", "images": seen,
            "timed_images": timed_images, "time_s": round(dt, 4), "images_per_s": round(ips, 3),
            "data_wait_s": round(wait, 4), "loss": round(loss_v, 6), "train_acc": round(acc, 6)}))
        if done >= total:
            break
    ips = all_images / all_time if all_time > 0 else 0.0
    test_acc = None
    if a.eval:
        test = load_split(a, "t10k")
        model.eval()
        hits = torch.zeros((), device=device, dtype=torch.long)
        with torch.no_grad():
            for x, y in loader(a, test, device, shuffle=False):
                x = x.to(device, non_blocking=True).contiguous(memory_format=mf)
                hits += (model(x).argmax(1) == y.to(device, non_blocking=True)).sum()
        test_acc = hits.item() / len(test)
    print(f"e2e result: {ips:.1f} images/s over {all_images} timed images ({done} steps), "
          f"train loss {loss_v:.3f}, train acc {acc:.3f}" +
          (f", test acc {test_acc:.3f}" if test_acc is not None else ""))
    print(json.dumps({
        "impl": "pytorch", "mode": "e2e", **info, "batch": a.batch, "workers": a.workers,
        "memory_format": a.format, "resize": "torch.nn.functional.interpolate bilinear",
        "steps": done, "warmup": warmup, "timed_images": all_images,
        "images_per_s": round(ips, 3), "loss": round(loss_v, 6), "train_acc": round(acc, 6),
        "test_acc": None if test_acc is None else round(test_acc, 6), "lr": a.lr,
        "momentum": a.momentum, "weight_decay": a.weight_decay}))
    if a.compare and ips > 0:
        compare(read_distnet(a.compare), {("e2e", a.batch): (ips, a.format)})


# ----------------------------------------------------------------------------------------------
# ratio: distnet's metrics JSON lines against PyTorch's.

def json_lines(path):
    try:
        with open(path) as f:
            lines = f.readlines()
    except OSError as e:
        fail(f"{path}: {e.strerror or e}", 1)
    for line in lines:
        line = line.strip()
        if line.startswith("{"):
            try:
                yield json.loads(line)
            except ValueError:
                pass


def batch_key(global_batch, ranks):
    per = global_batch / max(ranks, 1)
    return int(per) if per == int(per) else round(per, 2)


def read_distnet(paths):
    """{(mode, per-GPU batch): [(images/s per rank, description), ...]} from distnet metrics files:
    "benchmark" records are the compute figures, "epoch" records the end-to-end ones (their batch
    from the "run" record's config). Several ranks are compared per rank, i.e. per GPU."""
    out = {}
    for path in paths:
        run = {}
        for r in json_lines(path):
            ev = r.get("event")
            if ev == "run":
                cfg = dict(l.split(" = ", 1) for l in r.get("config", "").split("\n") if " = " in l)
                ctx = r.get("ctx") or [{}]
                run = {"model": cfg.get("model"), "batch": cfg.get("batch-size"),
                       "device": ctx[0].get("device", "?"), "ranks": r.get("ranks", 1)}
                if run["model"] and run["model"] != "alexnet":
                    print(f"note: {path}: distnet model is {run['model']}, not alexnet")
                if "cpu" in run["device"]:
                    print(f"note: {path}: distnet ran on {run['device']}")
            elif ev == "benchmark" and "images_per_s" in r and "global_batch" in r:
                ranks = r.get("ranks", 1)
                v = r.get("images_per_s_per_rank", r["images_per_s"] / max(ranks, 1))
                out.setdefault(("compute", batch_key(r["global_batch"], ranks)), []).append(
                    (v, f"{path}, {ranks} rank{'s' if ranks != 1 else ''}"))
            elif ev == "epoch" and "examples_per_s" in r and run.get("batch"):
                ranks = r.get("ranks", run.get("ranks", 1))
                out.setdefault(("e2e", batch_key(int(run["batch"]), ranks)), []).append(
                    (r["examples_per_s"] / max(ranks, 1), f"{path} epoch {r.get('epoch')}"))
    if not out:
        fail(f"no distnet benchmark or epoch records in {', '.join(paths)}", 1)
    return out


def read_pytorch(paths):
    """{(mode, batch): (images/s, memory format)} from this script's saved stdout: for compute the
    best memory format per batch, for e2e the final result line (median if several)."""
    got = {}
    for path in paths:
        for r in json_lines(path):
            if r.get("impl") != "pytorch" or not r.get("images_per_s", 0) > 0 or "batch" not in r:
                continue
            if r.get("mode") == "compute":
                got.setdefault(("compute", r["batch"]), []).append((r["images_per_s"], r["memory_format"]))
            elif r.get("mode") == "e2e" and r.get("event") != "epoch":
                got.setdefault(("e2e", r["batch"]), []).append((r["images_per_s"], r["memory_format"]))
    if not got:
        fail(f"no pytorch result records in {', '.join(paths)}", 1)
    out = {}
    for k, v in got.items():
        if k[0] == "compute":
            out[k] = max(v)
        else:
            out[k] = (statistics.median(x for x, _ in v), v[0][1])
    return out


def compare(distnet, pytorch):
    print("ratio distnet/pytorch (images/s per GPU; >1: distnet faster)")
    matched = 0
    for key in sorted(set(distnet) | set(pytorch), key=lambda k: (k[0], float(k[1]))):
        mode, batch = key
        d, p = distnet.get(key), pytorch.get(key)
        if not d or not p:
            side = "pytorch" if not p else "distnet"
            print(f"ratio {mode} batch {batch}: no {side} figure")
            continue
        dv = statistics.median(x for x, _ in d)
        r = dv / p[0]
        matched += 1
        print(f"ratio {mode} batch {batch}: distnet {dv:.1f} / pytorch {p[0]:.1f} ({p[1]}) = "
              f"{r:.3f}" + (f" (distnet median of {len(d)})" if len(d) > 1 else ""))
        print(json.dumps({"impl": "ratio", "mode": mode, "batch": batch,
                          "distnet_images_per_s": round(dv, 3), "distnet_runs": len(d),
                          "pytorch_images_per_s": round(p[0], 3), "pytorch_memory_format": p[1],
                          "ratio": round(r, 4)}))
    if not matched:
        fail("no batch size appears on both sides", 1)


def run_ratio(a):
    compare(read_distnet(a.distnet), read_pytorch(a.pytorch))


# ----------------------------------------------------------------------------------------------

class Parser(argparse.ArgumentParser):
    """Usage errors as one line (run with -h for the usage) and exit code 2, as distnet's."""
    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def positive_list(text):
    try:
        vals = [int(v) for v in text.split(",")]
    except ValueError:
        vals = []
    if not vals or min(vals) < 1:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of positive integers, got '{text}'")
    return vals


def formats_list(text):
    vals = [v.strip() for v in text.split(",")]
    if not vals or any(v not in FORMATS for v in vals):
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of {', '.join(FORMATS)}, got '{text}'")
    return vals


def at_least(lo):
    def conv(text):
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid integer '{text}'")
        if v < lo:
            raise argparse.ArgumentTypeError(f"must be at least {lo}, got {v}")
        return v
    return conv


def main():
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--device", choices=["cuda", "cpu"], default="cuda",
                        help="cuda (default); cpu only smoke-tests the script")
    common.add_argument("--math", choices=["tf32", "fp32"], default="tf32",
                        help="tf32 (default): allow TF32 in cuDNN and cuBLAS; fp32: forbid it")
    common.add_argument("--lr", type=float, default=0.01)
    common.add_argument("--momentum", type=float, default=0.0)
    common.add_argument("--weight-decay", type=float, default=0.0)
    common.add_argument("--init", choices=["xavier", "torch"], default="xavier",
                        help="xavier: distnet's default (MXNet Xavier, magnitude 2.24); "
                             "torch: PyTorch's default initialisation")
    common.add_argument("--seed", type=int, default=0)
    common.add_argument("--threads", type=at_least(0), default=0,
                        help="CPU threads with --device cpu (0: PyTorch's default)")
    common.add_argument("--compare", nargs="+", metavar="FILE",
                        help="distnet metrics files (JSON lines): print distnet/pytorch per batch")

    p = Parser(prog=PROG, description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="mode", required=True, metavar="{compute,e2e,ratio}")
    c = sub.add_parser("compute", parents=[common], help="synthetic data on the device")
    c.add_argument("--batch", type=positive_list, default=[128, 256],
                   help="comma-separated batch sizes (default 128,256)")
    c.add_argument("--formats", type=formats_list, default=list(FORMATS),
                   help="memory formats to try (default contiguous,channels_last)")
    c.add_argument("--warmup", type=at_least(0), default=10)
    c.add_argument("--steps", type=at_least(1), default=50)
    c.add_argument("--repeats", type=at_least(1), default=3)
    c.set_defaults(func=run_compute)

    e = sub.add_parser("e2e", parents=[common], help="Fashion-MNIST through a DataLoader")
    e.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist",
                   help="directory of the IDX files (gzipped or not)")
    e.add_argument("--batch", type=at_least(1), default=128)
    e.add_argument("--workers", type=at_least(0), default=4)
    e.add_argument("--epochs", type=at_least(1), default=1)
    e.add_argument("--steps", type=at_least(0), default=0, help="stop after N steps (0: no limit)")
    e.add_argument("--warmup", type=at_least(0), default=5, help="untimed steps at the start")
    e.add_argument("--format", choices=list(FORMATS), default="contiguous", help="memory format")
    e.add_argument("--eval", action="store_true", help="then evaluate on the test set (untimed)")
    e.set_defaults(func=run_e2e)

    r = sub.add_parser("ratio", help="distnet metrics files against this script's saved output")
    r.add_argument("--distnet", nargs="+", required=True, metavar="FILE",
                   help="distnet --metrics-file outputs")
    r.add_argument("--pytorch", nargs="+", required=True, metavar="FILE",
                   help="saved stdout of this script's compute/e2e runs")
    r.set_defaults(func=run_ratio)

    a = p.parse_args()
    a.func(a)


if __name__ == "__main__":
    main()
