#!/usr/bin/env python3
"""torchvision's input pipeline on an image folder, the other side of distnet_loader_bench's
encoded-image mode: same files, same transforms, same core count.

  run    torchvision.datasets.ImageFolder(DIR/train) + torch.utils.data.DataLoader with the
         standard transforms, timed per (transform, cores):
           train  RandomResizedCrop(S), RandomHorizontalFlip(), ToTensor(), Normalize(ImageNet)
           eval   Resize(S*256/224), CenterCrop(S), ToTensor(), Normalize(ImageNet)
         cores 1: in the calling process (num_workers=0, torch.set_num_threads(1)); cores N > 1:
         num_workers=N (persistent, warmed up before timing). Both sides read the training
         files (eval times the evaluation transform on them), index i -> i mod len, as distnet does.
  ratio  distnet's JSON lines against this script's: distnet/torchvision images/s per
         (transform, cores), medians over all timed runs in the files.

Output: one human line and one JSON line ({"impl":"torchvision",...}) per result.
"""
import argparse, json, os, statistics, sys, time, warnings

warnings.filterwarnings("ignore", message="Failed to initialize NumPy")
PROG = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "torchvision_loader_bench.py"
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def fail(msg, code):
    print(f"{PROG}: error: {msg}", file=sys.stderr)
    sys.exit(code)


def counts(text):
    try:
        v = [int(x) for x in text.split(",")]
    except ValueError:
        v = []
    if not v or min(v) < 1:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of positive integers, got '{text}'")
    return v


def positive(text):
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer '{text}'")
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {v}")
    return v


def cpu_seconds(pids):
    """User + system CPU seconds of these processes so far (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):
            pass
    return total


def loader_pids(loader):
    """This process and the DataLoader's worker processes (persistent workers: started once)."""
    it = getattr(loader, "_iterator", None)
    return [os.getpid()] + [w.pid for w in getattr(it, "_workers", []) or []]


def transforms_for(name, size):
    import torchvision.transforms as T
    if name == "train":
        return T.Compose([T.RandomResizedCrop(size), T.RandomHorizontalFlip(), T.ToTensor(),
                          T.Normalize(MEAN, STD)])
    return T.Compose([T.Resize(size * 256 // 224), T.CenterCrop(size), T.ToTensor(),
                      T.Normalize(MEAN, STD)])


def run(a):
    try:
        import torch, torchvision, PIL
        from torchvision.datasets import ImageFolder
        from torch.utils.data import DataLoader
    except ImportError as e:
        fail(f"cannot import torch/torchvision ({e}); pip install torch torchvision", 1)
    train_dir = os.path.join(a.data_dir, "train")
    if not os.path.isdir(train_dir):
        fail(f"{train_dir}: no such directory", 1)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, Pillow {PIL.__version__}; "
          f"{os.cpu_count()} CPUs, {len(os.sched_getaffinity(0))} usable; {a.images} images per run, "
          f"{a.repeats} runs", flush=True)
    for name in a.transforms.split(","):
        if name not in ("train", "eval"):
            fail(f"argument --transforms: expected train, eval or train,eval, got '{a.transforms}'", 2)
        ds = ImageFolder(train_dir, transform=transforms_for(name, a.size))
        order = [i % len(ds) for i in range(a.images)]
        print(f"transform {name}: {ds.transform}".replace("\n", " "), flush=True)
        for cores in a.cores:
            loader = DataLoader(ds, batch_size=a.batch, sampler=order, num_workers=0 if cores == 1 else cores,
                                persistent_workers=cores > 1)
            for _ in loader:  # warm-up: workers started, files in the page cache
                pass
            rates, cpu_rates = [], []
            for _ in range(a.repeats):
                pids = loader_pids(loader)
                c0, t0 = cpu_seconds(pids), time.perf_counter()
                n = 0
                for images, _labels in loader:
                    n += images.shape[0]
                rates.append(n / (time.perf_counter() - t0))
                cpu_rates.append(n / max(1e-9, cpu_seconds(pids) - c0))
            del loader
            rate, cpu_rate = statistics.median(rates), statistics.median(cpu_rates)
            print(f"torchvision {name} cores {cores}: {rate:.1f} images/s (runs {min(rates):.1f}-{max(rates):.1f}), "
                  f"{rate / cores:.1f} per core; {cpu_rate:.1f} images per CPU-second", flush=True)
            print(json.dumps({"impl": "torchvision", "transform": name, "cores": cores, "size": a.size,
                              "images": a.images, "images_per_s": round(rate, 2),
                              "images_per_s_runs": [round(r, 2) for r in rates],
                              "per_core": round(rate / cores, 2),
                              "images_per_cpu_s": round(cpu_rate, 2)}), flush=True)


def records(path, impl):
    """{(transform, cores): [record, ...]} in file order."""
    try:
        with open(path) as f:
            lines = [l for l in f if l.startswith("{")]
    except OSError as e:
        fail(f"{path}: {e.strerror}", 1)
    out = {}
    for l in lines:
        try:
            r = json.loads(l)
        except ValueError:
            continue
        if r.get("impl") == impl:
            out.setdefault((r["transform"], r["cores"]), []).append(r)
    if not out:
        fail(f"no {impl} records in {path}", 1)
    return out


def ratio(a):
    """Medians over all timed runs; the paired ratio pairs the k-th record of each side (the
    driver runs them back to back, so a busy spell on a shared machine hits both), and the CPU
    ratio compares images per CPU-second (robust to time-sharing)."""
    d, t = records(a.distnet, "distnet"), records(a.torchvision, "torchvision")
    for key in sorted(set(d) | set(t)):
        name, cores = key
        if key not in d or key not in t:
            print(f"ratio {name} cores {cores}: only {'distnet' if key in d else 'torchvision'} measured")
            continue
        dr = [x for r in d[key] for x in r["images_per_s_runs"]]
        tr = [x for r in t[key] for x in r["images_per_s_runs"]]
        dm, tm = statistics.median(dr), statistics.median(tr)
        paired = [x["images_per_s"] / y["images_per_s"] for x, y in zip(d[key], t[key])]
        dc = [r["images_per_cpu_s"] for r in d[key] if "images_per_cpu_s" in r]
        tc = [r["images_per_cpu_s"] for r in t[key] if "images_per_cpu_s" in r]
        print(f"ratio {name} cores {cores}: distnet {dm:.1f} ({min(dr):.1f}-{max(dr):.1f}, {len(dr)} runs)"
              f" / torchvision {tm:.1f} ({min(tr):.1f}-{max(tr):.1f}, {len(tr)} runs) images/s"
              f" = {dm / tm:.2f}; per core {dm / cores:.1f} / {tm / cores:.1f}")
        out = {"impl": "ratio", "transform": name, "cores": cores, "distnet": round(dm, 2),
               "torchvision": round(tm, 2), "ratio": round(dm / tm, 3)}
        print(f"  paired by round: {', '.join(f'{p:.2f}' for p in paired)} (median {statistics.median(paired):.2f})")
        out["paired_median"] = round(statistics.median(paired), 3)
        if dc and tc:
            cd, ct = statistics.median(dc), statistics.median(tc)
            print(f"  per CPU-second: distnet {cd:.1f} / torchvision {ct:.1f} images = {cd / ct:.2f}")
            out["cpu_ratio"] = round(cd / ct, 3)
        print(json.dumps(out))


class Parser(argparse.ArgumentParser):
    """Usage errors as one line, exit 2."""

    def error(self, message):
        fail(message, 2)


def main():
    p = Parser(prog=PROG, description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="mode", required=True, metavar="{run,ratio}")
    r = sub.add_parser("run", help="time torchvision's ImageFolder + DataLoader")
    r.add_argument("--data-dir", required=True, help="an image folder: DIR/train/<class>/*.jpg")
    r.add_argument("--cores", type=counts, default=[1, os.cpu_count() or 1])
    r.add_argument("--images", type=positive, default=512, help="images per timed run")
    r.add_argument("--repeats", type=positive, default=3)
    r.add_argument("--batch", type=positive, default=128)
    r.add_argument("--size", type=positive, default=224)
    r.add_argument("--transforms", default="train,eval")
    q = sub.add_parser("ratio", help="distnet / torchvision from saved outputs")
    q.add_argument("--distnet", required=True)
    q.add_argument("--torchvision", required=True)
    a = p.parse_args()
    run(a) if a.mode == "run" else ratio(a)


if __name__ == "__main__":
    main()
