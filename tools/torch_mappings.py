"""The name tables of tools/distnet_torch.py: every tensor of each supported model, by its PyTorch
name (torchvision's alexnet() and resnet18(), the d2l modules of tools/torch_models.py) and its
distnet name, with its shape and kind, in the PyTorch module's state_dict order. Plain Python.

  python3 tools/distnet_torch.py mapping --model NAME   prints one
"""
from collections import OrderedDict, namedtuple

# One tensor of a model: its PyTorch name, distnet name (docs/checkpoint-format.md: '.' becomes
# '/' in the file), shape, and kind: "param" (trainable: momentum in the file), "stat" (running
# statistic) or "count" (num_batches_tracked: PyTorch only).
Spec = namedtuple("Spec", "torch distnet shape kind")

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # torchvision's ImageNet normalisation of its weights
IMAGENET_STD = (0.229, 0.224, 0.225)


def _conv(specs, torch, distnet, cout, cin, k, bias=True):
    specs.append(Spec(torch + ".weight", distnet + ".weight", (cout, cin, k, k), "param"))
    if bias:
        specs.append(Spec(torch + ".bias", distnet + ".bias", (cout,), "param"))


def _dense(specs, torch, distnet, out, inp):
    specs.append(Spec(torch + ".weight", distnet + ".weight", (out, inp), "param"))
    specs.append(Spec(torch + ".bias", distnet + ".bias", (out,), "param"))


def _bn(specs, torch, distnet, c):
    """PyTorch's BatchNorm2d in its state_dict order; weight and bias are distnet's gamma, beta."""
    specs += [Spec(torch + ".weight", distnet + ".gamma", (c,), "param"),
              Spec(torch + ".bias", distnet + ".beta", (c,), "param"),
              Spec(torch + ".running_mean", distnet + ".running_mean", (c,), "stat"),
              Spec(torch + ".running_var", distnet + ".running_var", (c,), "stat"),
              Spec(torch + ".num_batches_tracked", None, (), "count")]


def torchvision_alexnet(c, classes):
    """torchvision.models.AlexNet: features.{0,3,6,8,10} are conv1..conv5, classifier.{1,4,6}
    dense1..dense3 (the dense1 input is the 256x6x6 adaptive pool, CHW-flattened in both)."""
    s = []
    cin = c
    for i, (idx, cout, k) in enumerate([(0, 64, 11), (3, 192, 5), (6, 384, 3), (8, 256, 3),
                                        (10, 256, 3)], start=1):
        _conv(s, f"features.{idx}", f"conv{i}", cout, cin, k)
        cin = cout
    _dense(s, "classifier.1", "dense1", 4096, 256 * 6 * 6)
    _dense(s, "classifier.4", "dense2", 4096, 4096)
    _dense(s, "classifier.6", "dense3", classes, 4096)
    return s


def torchvision_resnet18(c, classes):
    """torchvision.models.resnet18 (and tools/torch_models.ResNet18): a stage's '.' is '_' in
    distnet (layer2.0.downsample.1 -> layer2_0.downsample_1)."""
    s = []
    _conv(s, "conv1", "conv1", 64, c, 7, bias=False)
    _bn(s, "bn1", "bn1", 64)
    cin = 64
    for i, cout in enumerate([64, 128, 256, 512], start=1):
        for b in (0, 1):
            t, d = f"layer{i}.{b}", f"layer{i}_{b}"
            _conv(s, t + ".conv1", d + ".conv1", cout, cin, 3, bias=False)
            _bn(s, t + ".bn1", d + ".bn1", cout)
            _conv(s, t + ".conv2", d + ".conv2", cout, cout, 3, bias=False)
            _bn(s, t + ".bn2", d + ".bn2", cout)
            if b == 0 and i > 1:
                _conv(s, t + ".downsample.0", d + ".downsample_0", cout, cin, 1, bias=False)
                _bn(s, t + ".downsample.1", d + ".downsample_1", cout)
            cin = cout
    _dense(s, "fc", "fc", classes, 512)
    return s


def d2l_resnet18(c, classes):
    """tools/torch_models.D2lResNet18 (the zoo's resnet18): the same names in both."""
    s = []
    _conv(s, "conv1", "conv1", 64, c, 7)
    _bn(s, "bn1", "bn1", 64)
    cin = 64
    for stage, cout in zip(range(2, 6), [64, 128, 256, 512]):
        for b in (1, 2):
            n = f"b{stage}_{b}"
            _conv(s, n + ".conv1", n + ".conv1", cout, cin, 3)
            _conv(s, n + ".conv2", n + ".conv2", cout, cout, 3)
            if b == 1 and stage > 2:
                _conv(s, n + ".conv3", n + ".conv3", cout, cin, 1)
            _bn(s, n + ".bn1", n + ".bn1", cout)
            _bn(s, n + ".bn2", n + ".bn2", cout)
            cin = cout
    _dense(s, "fc", "fc", classes, 512)
    return s


GOOGLENET_BLOCKS = [("inc3a", 192, 64, (96, 128), (16, 32), 32),
                    ("inc3b", 256, 128, (128, 192), (32, 96), 64),
                    ("inc4a", 480, 192, (96, 208), (16, 48), 64),
                    ("inc4b", 512, 160, (112, 224), (24, 64), 64),
                    ("inc4c", 512, 128, (128, 256), (24, 64), 64),
                    ("inc4d", 512, 112, (144, 288), (32, 64), 64),
                    ("inc4e", 528, 256, (160, 320), (32, 128), 128),
                    ("inc5a", 832, 256, (160, 320), (32, 128), 128),
                    ("inc5b", 832, 384, (192, 384), (48, 128), 128)]


def d2l_googlenet(c, classes):
    """tools/torch_models.D2lGoogLeNet (the zoo's googlenet): the same names in both."""
    s = []
    _conv(s, "conv1", "conv1", 64, c, 7)
    _conv(s, "conv2", "conv2", 64, 64, 1)
    _conv(s, "conv3", "conv3", 192, 64, 3)
    for name, cin, c1, c2, c3, c4 in GOOGLENET_BLOCKS:
        for branch, cout, bin_, k in [("b1_1", c1, cin, 1), ("b2_1", c2[0], cin, 1),
                                      ("b2_2", c2[1], c2[0], 3), ("b3_1", c3[0], cin, 1),
                                      ("b3_2", c3[1], c3[0], 5), ("b4_2", c4, cin, 1)]:
            _conv(s, f"{name}.{branch}", f"{name}.{branch}", cout, bin_, k)
    _dense(s, "fc", "fc", classes, 1024)
    return s


# ARCH -> (distnet model, tensor table, default input, normalisation, dataset it was made for).
Arch = namedtuple("Arch", "model specs input mean std dataset")
ARCHS = OrderedDict([
    ("torchvision-alexnet", Arch("alexnet-torchvision", torchvision_alexnet, (3, 224, 224),
                                 IMAGENET_MEAN, IMAGENET_STD, "imagefolder")),
    ("torchvision-resnet18", Arch("resnet18-torchvision", torchvision_resnet18, (3, 224, 224),
                                  IMAGENET_MEAN, IMAGENET_STD, "imagefolder")),
    # d2l trains both on Fashion-MNIST resized to 96, with ToTensor alone: pixels / 255.
    ("d2l-resnet18", Arch("resnet18", d2l_resnet18, (1, 96, 96), (), (), "fashion-mnist")),
    ("d2l-googlenet", Arch("googlenet", d2l_googlenet, (1, 96, 96), (), (), "fashion-mnist")),
])
MODEL_ARCH = {a.model: name for name, a in ARCHS.items()}


def specs_for(arch, channels, classes):
    return ARCHS[arch].specs(channels, classes)


def dims(shape):
    return "x".join(str(d) for d in shape) if len(shape) else "scalar"


def h5_path(distnet_name):
    """docs/checkpoint-format.md: one group per layer, nested for a block's layers."""
    return distnet_name.replace(".", "/")
