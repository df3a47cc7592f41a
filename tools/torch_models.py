"""PyTorch modules of the zoo's networks, written from their papers and d2l.ai, with the map
from PyTorch's parameter names to distnet's. The equivalence test
(tests/model/test_torch_equivalence.py) and the CPU benchmark (bench/pytorch_cpu_resnet18.py)
build their PyTorch side from here; torchvision is not needed.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


class BasicBlock(nn.Module):
    """He et al.'s basic block as torchvision writes it: two 3x3 convolutions without bias, each
    followed by batch-norm, a ReLU between and after the add; a 1x1 convolution and batch-norm on
    the shortcut where the shape changes."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                            nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNet18(nn.Module):
    def __init__(self, channels, classes):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = 64
        for i, cout in enumerate([64, 128, 256, 512], start=1):
            stride = 1 if i == 1 else 2
            setattr(self, f"layer{i}", nn.Sequential(BasicBlock(cin, cout, stride),
                                                     BasicBlock(cout, cout, 1)))
            cin = cout
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, classes)

    def forward(self, x):
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


class Inception(nn.Module):
    """d2l's Inception block: four branches, concatenated along channels."""

    def __init__(self, cin, c1, c2, c3, c4):
        super().__init__()
        self.b1_1 = nn.Conv2d(cin, c1, 1)
        self.b2_1 = nn.Conv2d(cin, c2[0], 1)
        self.b2_2 = nn.Conv2d(c2[0], c2[1], 3, padding=1)
        self.b3_1 = nn.Conv2d(cin, c3[0], 1)
        self.b3_2 = nn.Conv2d(c3[0], c3[1], 5, padding=2)
        self.b4_1 = nn.MaxPool2d(3, 1, 1)
        self.b4_2 = nn.Conv2d(cin, c4, 1)

    def forward(self, x):
        b1 = F.relu(self.b1_1(x))
        b2 = F.relu(self.b2_2(F.relu(self.b2_1(x))))
        b3 = F.relu(self.b3_2(F.relu(self.b3_1(x))))
        b4 = F.relu(self.b4_2(self.b4_1(x)))
        return torch.cat((b1, b2, b3, b4), dim=1)


class InceptionStage(nn.Module):
    """GoogLeNet's third stage (d2l's b3: two Inception blocks and a 3/2 max pool) behind a small
    stem, closed by a global average pool and a dense layer."""

    def __init__(self, channels, classes):
        super().__init__()
        self.stem = nn.Conv2d(channels, 192, 3, padding=1)
        self.inc3a = Inception(192, 64, (96, 128), (16, 32), 32)
        self.inc3b = Inception(256, 128, (128, 192), (32, 96), 64)
        self.pool3 = nn.MaxPool2d(3, 2, 1)
        self.fc = nn.Linear(480, classes)

    def forward(self, x):
        x = self.pool3(self.inc3b(self.inc3a(F.relu(self.stem(x)))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def distnet_names(model):
    """torch state_dict name -> distnet tensor name: a stage's '.' becomes '_' (layer2.0 ->
    layer2_0, downsample.1 -> downsample_1), batch-norm's weight and bias are gamma and beta."""
    bn = {name for name, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)}
    out = {}
    for key in model.state_dict():
        module, _, leaf = key.rpartition(".")
        if leaf == "num_batches_tracked":
            continue
        if module in bn:
            leaf = {"weight": "gamma", "bias": "beta"}.get(leaf, leaf)
        parts = module.split(".")
        joined = []
        for p in parts:
            if p.isdigit() and joined:
                joined[-1] += "_" + p
            else:
                joined.append(p)
        out[key] = ".".join(joined + [leaf])
    return out


class D2lResidual(nn.Module):
    """d2l's residual block: convolutions with bias, batch-norm after each, an optional 1x1
    convolution (conv3) on the shortcut."""

    def __init__(self, cin, cout, use_1x1conv=False, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1)
        self.conv3 = nn.Conv2d(cin, cout, 1, stride) if use_1x1conv else None
        self.bn1 = nn.BatchNorm2d(cout)
        self.bn2 = nn.BatchNorm2d(cout)

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + (x if self.conv3 is None else self.conv3(x)))


class D2lResNet18(nn.Module):
    """d2l's ResNet-18 (the zoo's resnet18): stages b2..b5 of two blocks, named b2_1 ... b5_2."""

    def __init__(self, channels, classes):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 64, 7, 2, 3)
        self.bn1 = nn.BatchNorm2d(64)
        self.pool1 = nn.MaxPool2d(3, 2, 1)
        cin = 64
        self.blocks = []
        for stage, cout in zip(range(2, 6), [64, 128, 256, 512]):
            for b in (1, 2):
                first = b == 1 and stage > 2
                blk = D2lResidual(cin, cout, use_1x1conv=first, stride=2 if first else 1)
                setattr(self, f"b{stage}_{b}", blk)
                self.blocks.append(blk)
                cin = cout
        self.fc = nn.Linear(512, classes)

    def forward(self, x):
        x = self.pool1(F.relu(self.bn1(self.conv1(x))))
        for blk in self.blocks:
            x = blk(x)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class D2lGoogLeNet(nn.Module):
    """d2l's GoogLeNet (the zoo's googlenet): stem, Inception stages 3, 4 and 5, dense."""

    def __init__(self, channels, classes):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 64, 7, 2, 3)
        self.conv2 = nn.Conv2d(64, 64, 1)
        self.conv3 = nn.Conv2d(64, 192, 3, padding=1)
        spec = [("inc3a", 192, 64, (96, 128), (16, 32), 32),
                ("inc3b", 256, 128, (128, 192), (32, 96), 64), "pool3",
                ("inc4a", 480, 192, (96, 208), (16, 48), 64),
                ("inc4b", 512, 160, (112, 224), (24, 64), 64),
                ("inc4c", 512, 128, (128, 256), (24, 64), 64),
                ("inc4d", 512, 112, (144, 288), (32, 64), 64),
                ("inc4e", 528, 256, (160, 320), (32, 128), 128), "pool4",
                ("inc5a", 832, 256, (160, 320), (32, 128), 128),
                ("inc5b", 832, 384, (192, 384), (48, 128), 128)]
        self.body = []
        for s in spec:
            if isinstance(s, str):
                self.body.append(nn.MaxPool2d(3, 2, 1))
                continue
            m = Inception(*s[1:])
            setattr(self, s[0], m)
            self.body.append(m)
        self.fc = nn.Linear(1024, classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 3, 2, 1)
        x = F.max_pool2d(F.relu(self.conv3(F.relu(self.conv2(x)))), 3, 2, 1)
        for m in self.body:
            x = m(x)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))
