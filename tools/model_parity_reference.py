#!/usr/bin/env python3
"""PyTorch references for the models' parity tests (models/tests/parity_*.rs).

For each model, at small shapes: its weights, two fixed batches, the loss and every parameter's
gradient on the first batch (training mode), then 20 steps of torch.optim.RAdam alternating the
two batches, and the parameters and batch-norm buffers after them, and the loss in evaluation
mode (batch norm on its running statistics) after them. Written as safetensors files (the format
is written here by hand: an 8-byte little-endian header length, a JSON header, raw little-endian
data) under models/testdata/parity/, which the Rust tests read without Python.

Run from the repository root:

    pip install torch
    python3 tools/model_parity_reference.py

The steps use torch.optim.RAdam's defaults (betas 0.9/0.999, eps 1e-8, no weight decay) at lr
1e-3, alternating batch 0 and batch 1.

Models so far: the CIFAR ResNet-20 (depth 20, width 8 to keep the files small) with option-A
(zero-padding) and option-B (projection) shortcuts, as tools/model_reference.py defines it.
"""

import json
import os
import struct
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
from model_reference import CifarResNet  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "..", "models", "testdata", "parity")
STEPS = 20
LR = 1e-3


def save_safetensors(path, tensors):
    """tensors: name -> float32 or int64 tensor."""
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous()
        dtype = {torch.float32: "F32", torch.int64: "I64"}[t.dtype]
        # Without numpy: the raw bytes through a uint8 view (little-endian on x86-64 and arm64).
        data = bytes(t.reshape(-1).view(torch.uint8).tolist())
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


def resnet_reference(shortcut, name):
    torch.manual_seed(20 if shortcut == "projection" else 21)
    model = CifarResNet(20, 10, shortcut, base=8)
    batches = [(torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))) for _ in range(2)]
    out = {f"weights.{k}": v.clone() for k, v in model.state_dict().items() if v.dtype == torch.float32}
    for i, (images, labels) in enumerate(batches):
        out[f"batch{i}.images"] = images
        out[f"batch{i}.labels"] = labels
    model.train()
    loss = F.cross_entropy(model(batches[0][0]), batches[0][1])
    loss.backward()
    out["loss.train"] = loss.detach().reshape(1)
    # Numbered in the order of named_parameters(), which is the order Burn visits our modules'
    # parameters in (tested on the Rust side by the shapes).
    for i, (k, p) in enumerate(model.named_parameters()):
        out[f"grads.{i:03d}.{k}"] = p.grad.clone()
    model.zero_grad()
    # The first forward above updated the running statistics: start the steps from the weights
    # as saved.
    model.load_state_dict({k[len("weights."):]: v for k, v in out.items() if k.startswith("weights.")}, strict=False)
    optimizer = torch.optim.RAdam(model.parameters(), lr=LR)
    for step in range(STEPS):
        images, labels = batches[step % 2]
        optimizer.zero_grad()
        F.cross_entropy(model(images), labels).backward()
        optimizer.step()
    for k, v in model.state_dict().items():
        if v.dtype == torch.float32:
            out[f"after.{k}"] = v.clone()
    model.eval()
    with torch.no_grad():
        out["loss.eval"] = F.cross_entropy(model(batches[0][0]), batches[0][1]).reshape(1)
    save_safetensors(os.path.join(OUT, f"{name}.safetensors"), out)
    print(f"{name}: train loss {out['loss.train'].item():.6f}, eval loss after {STEPS} steps {out['loss.eval'].item():.6f}")


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(1)
    resnet_reference("projection", "resnet20_option_b")
    resnet_reference("zero_pad", "resnet20_option_a")


if __name__ == "__main__":
    main()
