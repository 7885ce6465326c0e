#!/usr/bin/env python3
"""Reference values from PyTorch for the Rust models' tests.

Writes models/testdata/param_counts.json (parameter counts of the reference models) and
models/testdata/adaptive_softmax.json (torch.nn.AdaptiveLogSoftmaxWithLoss on fixed weights) and
models/testdata/label_smoothing.json (F.cross_entropy with ignore_index and label_smoothing). Run from the repository root:

    pip install torch torchvision   # torchvision only for the ImageNet ResNets
    python3 tools/model_reference.py

The CIFAR ResNets follow He et al. (2016), section 4.2: a 3x3 stem with 16 channels, three stages
of n basic blocks (16/32/64 channels), global average pooling and a linear classifier. Shortcuts
that change shape are either 1x1-conv + BatchNorm projections (option B, as in the training code
the RAdam repository uses) or parameter-free subsample + zero padding (option A).
"""

import json
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

TESTDATA = os.path.join(os.path.dirname(__file__), "..", "models", "testdata")
OUT = os.path.join(TESTDATA, "param_counts.json")


class BasicBlock(nn.Module):
    def __init__(self, inp, out, stride, shortcut):
        super().__init__()
        self.conv1 = nn.Conv2d(inp, out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out)
        self.conv2 = nn.Conv2d(out, out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out)
        self.shortcut_kind = shortcut
        self.projection = None
        if (stride != 1 or inp != out) and shortcut == "projection":
            self.projection = nn.Sequential(nn.Conv2d(inp, out, 1, stride, bias=False), nn.BatchNorm2d(out))
        self.pad = (out - inp) // 2

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        if self.projection is not None:
            s = self.projection(x)
        elif self.pad > 0:
            s = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))
        else:
            s = x
        return F.relu(y + s)


class CifarResNet(nn.Module):
    def __init__(self, depth, num_classes, shortcut, base=16):
        super().__init__()
        n = (depth - 2) // 6
        self.stem = nn.Sequential(nn.Conv2d(3, base, 3, 1, 1, bias=False), nn.BatchNorm2d(base), nn.ReLU())
        layers, inp = [], base
        for i, width in enumerate([base, 2 * base, 4 * base]):
            for j in range(n):
                stride = 2 if i > 0 and j == 0 else 1
                layers.append(BasicBlock(inp, width, stride, shortcut))
                inp = width
        self.blocks = nn.Sequential(*layers)
        self.fc = nn.Linear(4 * base, num_classes)

    def forward(self, x):
        y = self.blocks(self.stem(x))
        return self.fc(y.mean(dim=(2, 3)))


def count(model):
    return sum(p.numel() for p in model.parameters())


def flat(t):
    return [float(x) for x in t.detach().reshape(-1).tolist()]


def adaptive_softmax_reference():
    torch.manual_seed(0)
    d_input, vocab, cutoffs, div = 8, 20, [5, 12], 2.0
    layer = nn.AdaptiveLogSoftmaxWithLoss(d_input, vocab, cutoffs, div_value=div)
    rows = 6
    hidden = torch.randn(rows, d_input) * 2.0
    targets = torch.tensor([0, 4, 5, 11, 12, 19])
    with torch.no_grad():
        log_prob = layer.log_prob(hidden)
        out = layer(hidden, targets)
    data = {
        "d_input": d_input,
        "vocab_size": vocab,
        "cutoffs": cutoffs,
        "div_value": div,
        "head": flat(layer.head.weight),
        "tails": [[flat(t[0].weight), flat(t[1].weight)] for t in layer.tail],
        "input": flat(hidden),
        "rows": rows,
        "targets": targets.tolist(),
        "log_prob": flat(log_prob),
        "mean_nll": float(out.loss),
    }
    with open(os.path.join(TESTDATA, "adaptive_softmax.json"), "w") as f:
        json.dump(data, f)
        f.write("\n")


def label_smoothing_reference():
    torch.manual_seed(1)
    cases = []
    for rows, classes, smoothing in [(7, 11, 0.1), (12, 5, 0.3), (4, 9, 0.0)]:
        logits = torch.randn(rows, classes) * 3.0
        targets = torch.randint(0, classes, (rows,))
        targets[1] = 2  # at least one padding row (pad id 2)
        loss = torch.nn.functional.cross_entropy(logits, targets, ignore_index=2, label_smoothing=smoothing)
        cases.append({
            "rows": rows, "classes": classes, "logits": flat(logits), "targets": targets.tolist(),
            "pad": 2, "smoothing": smoothing, "loss": float(loss),
        })
    with open(os.path.join(TESTDATA, "label_smoothing.json"), "w") as f:
        json.dump(cases, f)
        f.write("\n")


def main():
    adaptive_softmax_reference()
    label_smoothing_reference()
    counts = {}
    for depth in [20, 32, 44, 56, 110]:
        for shortcut in ["projection", "zero_pad"]:
            counts[f"cifar_resnet{depth}_{shortcut}_10"] = count(CifarResNet(depth, 10, shortcut))
    counts["cifar_resnet20_projection_100"] = count(CifarResNet(20, 100, "projection"))
    # A narrower network (the lr-robustness experiment's CPU model).
    counts["cifar_resnet8_projection_10_width8"] = count(CifarResNet(8, 10, "projection", base=8))
    try:
        import torchvision

        counts["resnet18_1000"] = count(torchvision.models.resnet18(num_classes=1000))
        counts["resnet34_1000"] = count(torchvision.models.resnet34(num_classes=1000))
        counts["resnet18_10"] = count(torchvision.models.resnet18(num_classes=10))
    except ImportError:
        print("torchvision missing: ImageNet ResNet counts not written")
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(counts, f, indent=1, sort_keys=True)
        f.write("\n")
    print(json.dumps(counts, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
