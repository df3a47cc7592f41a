#!/usr/bin/env python3
"""Prints one SHA-256 over a checkpoint's /params and /momentum tensors (names, shapes, raw float32
bytes, in name order), so two runs can be compared bit for bit against a digest kept in a test."""
import hashlib
import sys

import h5py


def digest(path):
    h = hashlib.sha256()
    with h5py.File(path, "r") as f:
        for group in ("params", "momentum"):
            names = []
            f[group].visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
            for n in sorted(names):
                d = f[group][n]
                h.update(f"{group}/{n}{d.shape}".encode())
                h.update(d[()].astype("<f4").tobytes())
    return h.hexdigest()


if __name__ == "__main__":
    print(digest(sys.argv[1]))
