#!/usr/bin/python3
"""compare_checkpoints.py A B TOL: every /params tensor of B within TOL of A, measured as
max |a - b| / max |a| per tensor (elementwise relative error is meaningless near zero).
Prints the worst tensor; exit 0 if within TOL."""
import sys

import h5py
import numpy as np

a, b, tol = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r"), float(sys.argv[3])
worst = (0.0, "")


def visit(name, obj):
    global worst
    if isinstance(obj, h5py.Dataset):
        x, y = a["params"][name][()], obj[()]
        err = float(np.abs(x - y).max() / max(np.abs(x).max(), 1e-30))
        worst = max(worst, (err, name))


b["params"].visititems(visit)
print("worst tensor %s: %.3g" % (worst[1], worst[0]))
sys.exit(0 if worst[0] <= tol else 1)
