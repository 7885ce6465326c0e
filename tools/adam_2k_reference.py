#!/usr/bin/env python3
"""Records reference Adam-2k trajectories for the Rust tests of Adam2k (both Burn adaptors).

Writes radam-core/testdata/adam_2k_reference.json (read through
radam_core::reference_data::adam_2k). Run from the repository root:

    pip install torch
    python3 tools/adam_2k_reference.py

Adam-2k is the paper's control experiment (Liu et al. 2020, section 3.2). The algorithm below
is written from the description of the code behind the paper's figure (the optimizer `Adam2`
in nmt/my_module/adam2.py of github.com/LiyuanLucasLiu/RAdam, with `adam_1k` in its name), in
float32 with PyTorch's in-place operations, step t counted from 1 over every step:

    v <- beta2 * v + (1 - beta2) * g * g                        (every step)
    if t > k:
        p <- p - weight_decay * lr * p                          (decoupled, updating steps only)
        m <- beta1 * m + (1 - beta1) * g
        p <- p - lr * sqrt(1 - beta2^t) / (1 - beta1^t) * m / (sqrt(v) + eps)

Each case has two parameters of different shapes, a gradient per step for each, both
parameters after every step, and m and v after the last step.
"""

import json
import math
import os
import sys

import torch

SHAPES = {"w": (3, 4), "b": (5,)}
OUT = os.path.join(os.path.dirname(__file__), "..", "radam-core", "testdata", "adam_2k_reference.json")


def f32_list(t):
    return [float(x) for x in t.detach().to(torch.float32).reshape(-1).tolist()]


def adam_2k_step(p, g, m, v, t, lr, beta_1, beta_2, eps, weight_decay, k):
    v.mul_(beta_2).addcmul_(g, g, value=1 - beta_2)
    if t <= k:
        return
    denominator = v.sqrt().add_(eps)
    step_size = lr * math.sqrt(1 - beta_2**t) / (1 - beta_1**t)
    if weight_decay != 0:
        p.add_(p, alpha=-weight_decay * lr)
    m.mul_(beta_1).add_(g, alpha=1 - beta_1)
    p.addcdiv_(m, denominator, value=-step_size)


def case(name, steps, k, lr, beta_1, beta_2, eps, weight_decay, seed):
    gen = torch.Generator().manual_seed(seed)
    params = {n: torch.randn(s, generator=gen) for n, s in SHAPES.items()}
    initial = {n: f32_list(p) for n, p in params.items()}
    m = {n: torch.zeros(s) for n, s in SHAPES.items()}
    v = {n: torch.zeros(s) for n, s in SHAPES.items()}
    grads = {n: [] for n in SHAPES}
    after = {n: [] for n in SHAPES}
    for t in range(1, steps + 1):
        for n, p in params.items():
            g = torch.randn(SHAPES[n], generator=gen)
            grads[n].append(f32_list(g))
            adam_2k_step(p, g, m[n], v[n], t, lr, beta_1, beta_2, eps, weight_decay, k)
            after[n].append(f32_list(p))
    return {
        "name": name,
        "steps": steps,
        "frozen_steps": k,
        "lr": lr,
        "beta_1": beta_1,
        "beta_2": beta_2,
        "epsilon": eps,
        "weight_decay": weight_decay,
        "initial": initial,
        "grads": grads,
        "after": after,
        "m": {n: f32_list(x) for n, x in m.items()},
        "v": {n: f32_list(x) for n, x in v.items()},
    }


def main():
    cases = [
        case("k5_decoupled_decay", 30, 5, 1e-2, 0.9, 0.999, 1e-8, 0.1, seed=1),
        case("k12_beta2_0.98", 40, 12, 3e-3, 0.9, 0.98, 1e-8, 0.0, seed=2),
        case("k0_is_adam", 20, 0, 1e-2, 0.8, 0.99, 1e-6, 0.01, seed=3),
    ]
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump({"shapes": SHAPES, "cases": cases}, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {len(cases)} cases to {os.path.normpath(OUT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
