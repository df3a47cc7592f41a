#!/usr/bin/python3
"""Reads a distnet checkpoint with h5py alone -- no distnet code -- and checks what
docs/checkpoint-format.md promises: attributes, one group per layer, framework-neutral shapes,
momentum mirroring the trainable tensors. Exit 0 and print 'ok' on success."""
import sys

import h5py

path = sys.argv[1]
with h5py.File(path, "r") as f:
    a = f.attrs
    assert int(a["format_version"]) == 1, a["format_version"]
    model = a["model"].decode() if isinstance(a["model"], bytes) else a["model"]
    assert model == "lenet", model
    assert list(a["input_shape"]) == [1, 28, 28], a["input_shape"]
    for key in ("classes", "step", "epoch", "batch_in_epoch", "seed", "world_size", "global_batch",
                "train_samples", "learning_rate", "epoch_sums", "config", "distnet_version", "rng"):
        assert key in a, "missing attribute " + key
    assert f["params/conv1/weight"].shape == (20, 1, 5, 5)       # O x I x H x W
    assert f["params/dense1/weight"].shape == (500, 800)         # out x in
    assert f["params/dense2/bias"].shape == (10,)
    assert f["params/conv1/weight"].dtype == "float32"
    names = []
    f["params"].visit(lambda n: names.append(n) if isinstance(f["params"][n], h5py.Dataset) else None)
    for n in names:
        assert f["momentum"][n].shape == f["params"][n].shape, n
    config = a["config"].decode() if isinstance(a["config"], bytes) else a["config"]
    assert "model = lenet" in config
    step = int(a["step"])
print("ok", path, "step", step, "tensors", len(names))
