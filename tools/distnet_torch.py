#!/usr/bin/env python3
"""distnet checkpoints to and from PyTorch state_dicts (docs/interchange.md#to-and-from-pytorch).

  distnet_torch.py to-torch CKPT.h5 OUT.pt [--arch ARCH]
  distnet_torch.py from-torch IN.pt OUT.h5 --model NAME [--arch ARCH] [--input C,H,W] [--classes N]
  distnet_torch.py mapping --model NAME|--arch ARCH [--input C,H,W] [--classes N]

to-torch writes the checkpoint's weights and batch-norm running statistics as a state_dict
(torch.save of an OrderedDict of tensors) with the parameter names of the matching PyTorch module:
torchvision's alexnet() and resnet18(), or the d2l modules of tools/torch_models.py. from-torch
writes a distnet checkpoint (docs/checkpoint-format.md) that `alexnet --init-from`, `--eval-only
--checkpoint` and the `load_checkpoint` behind them accept: step 0, zero momentum, a `config` that
names the model, resize and normalisation. `mapping` prints the name table (needs no torch).

Supported (ARCH: distnet model):
  torchvision-alexnet:  alexnet-torchvision     torchvision-resnet18: resnet18-torchvision
  d2l-resnet18:         resnet18                d2l-googlenet:        googlenet
Momentum is not exported; PyTorch's num_batches_tracked is not stored in a checkpoint (to-torch
writes the checkpoint's step there). Only torch reads and writes .pt files: the rest needs numpy
and h5py alone (checkpoint_from_arrays, arrays_from_checkpoint). Exit 0 on success, 1 when a file
does not fit (each problem in one line naming the tensor), 2 for a usage error.
"""
import argparse
import os
import re
import sys
from collections import OrderedDict

try:
    import numpy as np
except ImportError as e:  # one line, not a traceback
    sys.exit(f"distnet_torch: error: {e}: install numpy and h5py (Debian: python3-h5py)")

from torch_mappings import ARCHS, MODEL_ARCH, dims, h5_path, specs_for  # noqa: F401 (the API)

RNG = "philox4x32-10, counter-based: the state is (seed, step)"


class ConversionError(Exception):
    """A file that does not fit: one line, naming the file and the tensor."""


class Usage(Exception):
    """A bad option value (exit 2)."""


def resolve_arch(model=None, arch=None):
    """The ARCH name for a distnet model and/or --arch, which must agree."""
    if arch is not None and arch not in ARCHS:
        raise Usage(f"unknown --arch {arch}; expected one of: {', '.join(ARCHS)}")
    if model is not None and model not in MODEL_ARCH:
        raise Usage(f"no PyTorch mapping for model '{model}'; supported: " +
                    ", ".join(f"{m} ({a})" for m, a in MODEL_ARCH.items()))
    if arch is None:
        return MODEL_ARCH[model]
    if model is not None and ARCHS[arch].model != model:
        raise Usage(f"--arch {arch} is distnet's {ARCHS[arch].model}, not {model}")
    return arch


# --- numpy side: no torch needed ------------------------------------------------------------------


def check_names(arrays, specs, arch, source):
    want = [s.torch for s in specs]
    missing = [n for n in want if n not in arrays and not n.endswith(".num_batches_tracked")]
    known = set(want)
    extra = [n for n in arrays if n not in known]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} tensor(s): {', '.join(missing)}")
        if extra:
            parts.append(f"{len(extra)} tensor(s) not in {arch}: {', '.join(extra)}")
        raise ConversionError(f"{source}: not a {arch} state_dict: " + "; ".join(parts))


def checkpoint_from_arrays(arrays, out, model, input_shape=None, classes=None, arch=None,
                           source="state_dict"):
    """Writes the distnet checkpoint `out` from `arrays` (PyTorch name -> numpy array). Channels
    and classes default to the first and last layers'; every name and shape is checked first.
    Returns (arch, input shape, classes)."""
    arch = resolve_arch(model, arch)
    a = ARCHS[arch]
    probe = specs_for(arch, 1, 1)
    check_names(arrays, probe, arch, source)
    first, last = probe[0], [s for s in probe if s.torch.endswith(".weight")][-1]
    first_shape, last_shape = np.shape(arrays[first.torch]), np.shape(arrays[last.torch])
    if input_shape is None:  # a tensor of the wrong rank keeps the default, and fails below
        channels = first_shape[1] if len(first_shape) == 4 else a.input[0]
        input_shape = (int(channels),) + tuple(a.input[1:])
    if classes is None:
        classes = int(last_shape[0]) if len(last_shape) == 2 else 1000
    input_shape = tuple(int(d) for d in input_shape)
    if len(input_shape) != 3 or min(input_shape) < 1 or classes < 1:
        raise Usage(f"--input must be C,H,W >= 1 and --classes >= 1, got "
                    f"{','.join(map(str, input_shape))} and {classes}")
    specs = specs_for(arch, input_shape[0], classes)
    tensors = OrderedDict()
    for s in specs:
        if s.kind == "count":
            continue
        v = np.asarray(arrays[s.torch])
        if tuple(v.shape) != s.shape:
            raise ConversionError(
                f"{source}: {s.torch} has shape {dims(v.shape)}, expected {dims(s.shape)} "
                f"(distnet {s.distnet} of {a.model}, input {dims(input_shape)}, {classes} classes)")
        if not np.issubdtype(v.dtype, np.floating):
            raise ConversionError(f"{source}: {s.torch} is {v.dtype}, expected floating point")
        v = np.ascontiguousarray(v, dtype="<f4")
        if not np.all(np.isfinite(v)):
            raise ConversionError(f"{source}: {s.torch} holds a non-finite value (distnet "
                                  f"refuses such checkpoints)")
        tensors[s.distnet] = (v, s.kind)
    write_checkpoint(out, a, input_shape, classes, tensors,
                     config_ini(arch, input_shape, os.path.basename(str(source))))
    return arch, input_shape, classes


def config_ini(arch, input_shape, source):
    """The `config` attribute: what --eval-only adopts (model, resize, normalisation, dataset),
    readable back by `alexnet --config`."""
    a = ARCHS[arch]
    c, h, w = input_shape
    source = re.sub(r"[=\s]", "_", source)  # a comment line of the INI, nothing else
    lines = [f"# converted from PyTorch ({arch}, {source}) by tools/distnet_torch.py from-torch",
             f"model = {a.model}", f"resize = {h if h == w else 0}"]
    if len(a.mean) == c:
        lines += ["normalize-mean = " + ",".join(f"{v:g}" for v in a.mean),
                  "normalize-std = " + ",".join(f"{v:g}" for v in a.std)]
    else:
        lines += ["normalize-mean = ", "normalize-std = "]
    if c == a.input[0]:  # the data the weights were made for; other channels: the user's data
        lines.append(f"dataset = {a.dataset}")
    return "\n".join(lines) + "\n"


def distnet_version():
    """The project version from CMakeLists.txt beside this tool, as distnet's writer records."""
    try:
        with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                               "CMakeLists.txt")) as f:
            m = re.search(r"project\(distnet VERSION ([0-9.]+)", f.read())
        version = m.group(1) if m else "unknown"
    except OSError:
        version = "unknown"
    return f"{version} (tools/distnet_torch.py)"


def import_h5py():
    try:
        import h5py
    except ImportError as e:
        raise ConversionError(f"{e}: HDF5 files need h5py (Debian: python3-h5py; pip install "
                              f"h5py)")
    return h5py


def write_checkpoint(out, a, input_shape, classes, tensors, config):
    """docs/checkpoint-format.md, written as distnet writes it: every root attribute, float32
    datasets chunked by whole rows (<= 256 MiB a chunk) with the Fletcher32 filter, momentum zero;
    to a temporary file in the same directory, fsynced, then renamed."""
    h5py = import_h5py()

    def text(f, name, value):  # fixed-length UTF-8, null-padded, as distnet's reader requires
        b = value.encode("utf-8")
        n = max(1, len(b))
        f.attrs.create(name, np.array(b, dtype=f"S{n}"), dtype=h5py.string_dtype("utf-8", n))

    def i64(f, name, value):
        f.attrs.create(name, np.asarray(value, dtype="<i8"), dtype="<i8")

    def f64(f, name, value):
        f.attrs.create(name, np.asarray(value, dtype="<f8"), dtype="<f8")

    def dataset(group, name, v):
        rows = max(1, min(v.shape[0], (256 << 20) // (v.size // v.shape[0] * 4)))
        group.create_dataset(h5_path(name), data=v, dtype="<f4", chunks=(rows,) + v.shape[1:],
                             fletcher32=True)

    out = os.path.abspath(out)
    folder, base = os.path.split(out)
    tmp = os.path.join(folder, f".{base}.tmp-{os.getpid()}")
    try:
        with h5py.File(tmp, "w") as f:
            i64(f, "format_version", 1)
            text(f, "distnet_version", distnet_version())
            text(f, "model", a.model)
            i64(f, "input_shape", list(input_shape))
            i64(f, "classes", classes)
            i64(f, "world_size", 1)
            i64(f, "global_batch", 1)  # no step was taken; the format asks for >= 1
            i64(f, "train_samples", 1)
            text(f, "config", config)
            text(f, "run_id", os.urandom(8).hex())
            i64(f, "skipped_steps", 0)
            i64(f, "step", 0)
            i64(f, "epoch", 0)
            i64(f, "batch_in_epoch", 0)
            i64(f, "seed", 0)
            text(f, "rng", RNG)
            f64(f, "learning_rate", 0.0)
            f64(f, "epoch_sums", [0.0, 0.0, 0.0])
            params = f.create_group("params")
            for name, (v, _) in tensors.items():
                dataset(params, name, v)
            momentum = f.create_group("momentum")
            for name, (v, kind) in tensors.items():
                if kind == "param":
                    dataset(momentum, name, np.zeros_like(v))
            f.flush()
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, out)
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def arrays_from_checkpoint(path, arch=None):
    """(arch, OrderedDict PyTorch name -> numpy array in the module's state_dict order). The
    checkpoint's every tensor must be in the table and the other way round; num_batches_tracked
    is the checkpoint's step (one running-statistics update per step) as an int64 scalar."""
    h5py = import_h5py()

    if not os.path.isfile(path):
        raise ConversionError(f"{path}: no such file")
    try:
        f = h5py.File(path, "r")
    except OSError:
        raise ConversionError(f"{path}: not an HDF5 file (or a damaged one)")
    with f:
        def attr(name):
            if name not in f.attrs:
                raise ConversionError(f"{path}: not a distnet checkpoint: attribute '{name}' "
                                      f"is missing")
            v = f.attrs[name]
            return v.decode("utf-8") if isinstance(v, bytes) else v

        # Version 2 (--optimizer lars, adamw) differs in the optimizer's state alone, which a
        # conversion leaves out.
        if int(attr("format_version")) not in (1, 2):
            raise ConversionError(f"{path}: format version {attr('format_version')}, "
                                  f"expected 1 or 2")
        model = str(attr("model"))
        if arch is None:
            if model not in MODEL_ARCH:
                raise ConversionError(f"{path}: no PyTorch mapping for its model '{model}'; "
                                      f"supported: {', '.join(MODEL_ARCH)}")
            arch = MODEL_ARCH[model]
        elif arch not in ARCHS:
            raise Usage(f"unknown --arch {arch}; expected one of: {', '.join(ARCHS)}")
        elif ARCHS[arch].model != model:
            raise ConversionError(f"{path}: checkpoint of model '{model}'; --arch {arch} is "
                                  f"distnet's {ARCHS[arch].model}")
        input_shape = tuple(int(d) for d in attr("input_shape"))
        classes = int(attr("classes"))
        step = int(attr("step"))
        if "params" not in f:
            raise ConversionError(f"{path}: not a distnet checkpoint: no /params group")
        specs = specs_for(arch, input_shape[0], classes)
        wanted = {h5_path(s.distnet) for s in specs if s.distnet}
        stored = []
        f["params"].visit(lambda n: stored.append(n) if isinstance(f["params"][n], h5py.Dataset)
                          else None)
        extra = sorted(set(stored) - wanted)
        if extra:
            raise ConversionError(f"{path}: /params holds {len(extra)} tensor(s) that {arch} has "
                                  f"no name for: {', '.join('/params/' + n for n in extra)}")
        out = OrderedDict()
        for s in specs:
            if s.kind == "count":
                out[s.torch] = np.array(step, dtype=np.int64)
                continue
            name = "params/" + h5_path(s.distnet)
            if name not in f:
                raise ConversionError(f"{path}: dataset /{name} is missing (PyTorch {s.torch})")
            d = f[name]
            if tuple(d.shape) != s.shape:
                raise ConversionError(f"{path}: dataset /{name} has shape {dims(d.shape)}, "
                                      f"expected {dims(s.shape)} ({arch}, input "
                                      f"{dims(input_shape)}, {classes} classes)")
            try:
                out[s.torch] = np.ascontiguousarray(d[...], dtype="<f4")
            except OSError as e:
                raise ConversionError(f"{path}: dataset /{name} cannot be read: {e}")
        return arch, out


# --- torch side: .pt files ------------------------------------------------------------------------


def import_torch():
    try:
        import torch
    except ImportError as e:
        raise ConversionError(f"reading and writing .pt files needs PyTorch ({e}); "
                              f"install it with `pip install torch`")
    return torch


def load_state_dict(path):
    """A .pt state_dict as PyTorch name -> numpy array: also one wrapped in a dict under
    'state_dict' or 'model' (training scripts' checkpoints), with DDP's 'module.' prefix removed."""
    torch = import_torch()
    if not os.path.isfile(path):
        raise ConversionError(f"{path}: no such file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many kinds; one line says which file and why
        if "Weights only load failed" in str(e):
            raise ConversionError(f"{path}: holds more than tensors (a pickled module or other "
                                  f"objects?); save model.state_dict() instead")
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConversionError(f"{path}: cannot load as a state_dict: {first}")
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict):
        raise ConversionError(f"{path}: holds a {type(obj).__name__}, not a state_dict")
    out = OrderedDict()
    converted = {}
    for name, v in obj.items():
        if not isinstance(v, torch.Tensor):
            raise ConversionError(f"{path}: entry '{name}' is a {type(v).__name__}, not a tensor")
        if isinstance(name, str) and name.startswith("module."):
            name = name[len("module."):]
        if name in out:
            raise ConversionError(f"{path}: tensor {name} appears twice (with and without "
                                  f"'module.')")
        v = v.detach().cpu()
        if v.is_floating_point() and v.dtype != torch.float32:
            converted.setdefault(str(v.dtype), []).append(name)
            v = v.float()
        out[name] = v.numpy()
    for dtype, names in converted.items():
        print(f"distnet_torch: note: {len(names)} tensor(s) of {dtype} ({names[0]}, ...) stored "
              f"as float32", file=sys.stderr)
    return out


def save_state_dict(arrays, path):
    torch = import_torch()
    state = OrderedDict((k, torch.from_numpy(np.array(v, copy=True))) for k, v in arrays.items())
    try:
        torch.save(state, path)
    except (OSError, RuntimeError) as e:
        raise ConversionError(f"{path}: cannot write: {str(e).strip().splitlines()[0]}")


def check_writable(path):
    """Refuses an output whose directory is missing or read-only before any work is done."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ConversionError(f"{path}: cannot write: directory {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise ConversionError(f"{path}: cannot write: directory {folder} is not writable")


# --- command line ---------------------------------------------------------------------------------


def parse_input(text):
    try:
        v = tuple(int(d) for d in re.split(r"[,x]", text))
    except ValueError:
        v = ()
    if len(v) != 3 or min(v) < 1:
        raise Usage(f"--input must be C,H,W (three sizes >= 1), got '{text}'")
    return v


def main(argv=None):
    p = argparse.ArgumentParser(prog="distnet_torch.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("to-torch", help="distnet checkpoint -> PyTorch state_dict")
    t.add_argument("checkpoint")
    t.add_argument("out")
    t.add_argument("--arch", help="|".join(ARCHS) + " (default: from the checkpoint's model)")
    f = sub.add_parser("from-torch", help="PyTorch state_dict -> distnet checkpoint")
    f.add_argument("state_dict")
    f.add_argument("out")
    f.add_argument("--model", required=True, help="distnet model: " + ", ".join(MODEL_ARCH))
    f.add_argument("--arch", help="|".join(ARCHS) + " (default: the model's)")
    f.add_argument("--input", help="C,H,W (default: channels of the first layer, the arch's "
                                   "size: 224 for torchvision, 96 for d2l)")
    f.add_argument("--classes", type=int, help="default: the last layer's outputs")
    m = sub.add_parser("mapping", help="print the name table (no torch needed)")
    m.add_argument("--model")
    m.add_argument("--arch")
    m.add_argument("--input", help="C,H,W (default: the arch's)")
    m.add_argument("--classes", type=int, default=1000)
    args = p.parse_args(argv)
    try:
        if args.command == "to-torch":
            check_writable(args.out)
            arch, arrays = arrays_from_checkpoint(args.checkpoint, args.arch)
            save_state_dict(arrays, args.out)
            print(f"{args.out}: {len(arrays)} tensors of {arch} from {args.checkpoint}")
        elif args.command == "from-torch":
            if args.classes is not None and args.classes < 1:
                raise Usage(f"--classes must be >= 1, got {args.classes}")
            shape = parse_input(args.input) if args.input else None
            arch = resolve_arch(args.model, args.arch)
            check_writable(args.out)
            arrays = load_state_dict(args.state_dict)
            arch, shape, classes = checkpoint_from_arrays(arrays, args.out, args.model, shape,
                                                          args.classes, arch, args.state_dict)
            print(f"{args.out}: {ARCHS[arch].model}, input {dims(shape)}, {classes} classes, "
                  f"from {len(arrays)} tensors of {args.state_dict}")
        else:
            if (args.model is None) == (args.arch is None):
                raise Usage("mapping needs --model or --arch")
            arch = resolve_arch(args.model, args.arch)
            shape = parse_input(args.input) if args.input else ARCHS[arch].input
            print(f"# {arch} <-> distnet {ARCHS[arch].model}, input {dims(shape)}, "
                  f"{args.classes} classes")
            for s in specs_for(arch, shape[0], args.classes):
                where = "/params/" + h5_path(s.distnet) if s.distnet else "(not stored)"
                print(f"{s.torch:40s} {where:40s} {dims(s.shape)}")
    except Usage as e:
        print(f"distnet_torch: error: {e}", file=sys.stderr)
        return 2
    except ConversionError as e:
        print(f"distnet_torch: error: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `mapping ... | head`
        sys.stderr.close()
        return 0
    except OSError as e:  # writing OUT: a full disk, say
        print(f"distnet_torch: error: {getattr(args, 'out', '')}: cannot write: {e}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
