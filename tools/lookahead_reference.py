#!/usr/bin/env python3
"""Records reference Lookahead trajectories for the Rust tests of Lookahead and Ranger.

Writes radam-core/testdata/lookahead_reference.json (read by both Burn adaptors' tests through
radam_core::reference_data::lookahead). Run from the repository root:

    pip install torch
    python3 tools/lookahead_reference.py

Lookahead is written here from the paper's Algorithm 1 (Zhang et al., "Lookahead Optimizer: k
steps forward, 1 step back", NeurIPS 2019): the slow weights phi start at the initial parameters;
after every k steps of the inner optimizer, phi <- phi + alpha * (theta - phi) and theta <- phi.
The inner optimizers are PyTorch's own (torch.optim.RAdam, torch.optim.Adam, single-tensor CPU
path). Each case has two parameters of different shapes, a gradient per step for each, and both
parameters after every step.
"""

import json
import os
import sys

import torch

SHAPES = {"w": (3, 4), "b": (5,)}
OUT = os.path.join(os.path.dirname(__file__), "..", "radam-core", "testdata", "lookahead_reference.json")


def f32_list(t):
    return [float(x) for x in t.detach().to(torch.float32).reshape(-1).tolist()]


def case(name, inner, steps, k, alpha, lr, seed):
    gen = torch.Generator().manual_seed(seed)
    params = {n: torch.nn.Parameter(torch.randn(s, generator=gen)) for n, s in SHAPES.items()}
    initial = {n: f32_list(p) for n, p in params.items()}
    if inner == "radam":
        opt = torch.optim.RAdam(params.values(), lr=lr, foreach=False)
    elif inner == "adam":
        opt = torch.optim.Adam(params.values(), lr=lr, eps=1e-8, foreach=False)
    else:
        raise ValueError(inner)
    slow = {n: p.detach().clone() for n, p in params.items()}
    grads = {n: [] for n in SHAPES}
    after = {n: [] for n in SHAPES}
    for t in range(1, steps + 1):
        for n, p in params.items():
            g = torch.randn(SHAPES[n], generator=gen)
            p.grad = g
            grads[n].append(f32_list(g))
        opt.step()
        if t % k == 0:
            with torch.no_grad():
                for n, p in params.items():
                    slow[n].add_(p - slow[n], alpha=alpha)
                    p.copy_(slow[n])
        for n, p in params.items():
            after[n].append(f32_list(p))
    return {
        "name": name,
        "inner": inner,
        "steps": steps,
        "k": k,
        "alpha": alpha,
        "lr": lr,
        "initial": initial,
        "grads": grads,
        "after": after,
    }


def main():
    cases = [
        case("radam_defaults", "radam", 40, 5, 0.5, 1e-2, seed=1),
        case("adam_k3_alpha_0.8", "adam", 31, 3, 0.8, 1e-2, seed=2),
    ]
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump({"shapes": SHAPES, "cases": cases}, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {len(cases)} cases to {os.path.normpath(OUT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
