#!/usr/bin/env python3
"""Writes Fashion-MNIST images as files in an image-folder tree, for `alexnet predict` and for
fine-tuning experiments on a subset of the classes:

  OUT/train/<label>-<name>/<index>.<ext>   the first N images of each chosen class of the train split
  OUT/val/<label>-<name>/<index>.<ext>     the first M of the test split (t10k)

  python3 tools/fashion_mnist_folder.py OUT [--classes 6,7,8,9] [--train-per-class N]
      [--val-per-class M] [--format png|jpeg] [--quality Q] [--data-dir DIR]

<index> is the image's index in its split, so a file can be traced to its IDX record. PNG keeps
every pixel; JPEG (quality 95 by default) changes a few. Needs numpy and Pillow (Debian:
python3-numpy, python3-pil).
"""
import argparse
import gzip
import os
import sys

import numpy as np
from PIL import Image

NAMES = ["tshirt", "trouser", "pullover", "dress", "coat",
         "sandal", "shirt", "sneaker", "bag", "ankle-boot"]


def read_idx(path, magic, header_ints):
    with gzip.open(path, "rb") as f:
        data = f.read()
    head = np.frombuffer(data[:4 * header_ints], dtype=">u4")
    if head[0] != magic:
        sys.exit(f"fashion_mnist_folder: error: {path}: magic {head[0]:#x}, expected {magic:#x}")
    return data[4 * header_ints:], head


def load(data_dir, prefix):
    pixels, head = read_idx(os.path.join(data_dir, f"{prefix}-images-idx3-ubyte.gz"), 0x803, 4)
    labels, _ = read_idx(os.path.join(data_dir, f"{prefix}-labels-idx1-ubyte.gz"), 0x801, 2)
    n, rows, cols = (int(v) for v in head[1:4])
    return np.frombuffer(pixels, np.uint8).reshape(n, rows, cols), np.frombuffer(labels, np.uint8)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--classes", default="0,1,2,3,4,5,6,7,8,9",
                    help="labels to write, comma-separated (default: all ten)")
    ap.add_argument("--train-per-class", type=int, default=100)
    ap.add_argument("--val-per-class", type=int, default=100)
    ap.add_argument("--format", choices=["png", "jpeg"], default="png")
    ap.add_argument("--quality", type=int, default=95, help="JPEG quality")
    ap.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    a = ap.parse_args()
    try:
        classes = [int(c) for c in a.classes.split(",")]
    except ValueError:
        sys.exit(f"fashion_mnist_folder: error: --classes {a.classes}: expected labels 0-9, "
                 "comma-separated")
    if not classes or any(c < 0 or c > 9 for c in classes) or len(set(classes)) != len(classes):
        sys.exit(f"fashion_mnist_folder: error: --classes {a.classes}: expected distinct labels 0-9")
    ext = "png" if a.format == "png" else "jpg"
    for split, prefix, per_class in (("train", "train", a.train_per_class),
                                     ("val", "t10k", a.val_per_class)):
        if per_class <= 0:
            continue
        images, labels = load(a.data_dir, prefix)
        for c in classes:
            folder = os.path.join(a.out, split, f"{c}-{NAMES[c]}")
            os.makedirs(folder, exist_ok=True)
            for i in np.flatnonzero(labels == c)[:per_class]:
                img = Image.fromarray(images[i], mode="L")
                path = os.path.join(folder, f"{int(i):05d}.{ext}")
                if ext == "png":
                    img.save(path)
                else:
                    img.save(path, quality=a.quality)
    print(f"fashion_mnist_folder: {a.out}: classes {a.classes}, {a.train_per_class} train and "
          f"{a.val_per_class} val images per class ({a.format})")


if __name__ == "__main__":
    main()
