#!/usr/bin/env python3
"""Records reference RAdam trajectories for the Rust parity tests.

Writes radam-core/testdata/radam_reference.json. Run from the repository root:

    pip install torch
    python3 tools/radam_reference.py

Each case gives a parameter tensor, a sequence of gradients and learning rates, and the parameters
and both moments after every step. The "large" cases use a parameter of 200,003 elements (the
fused step's parallel chunks) built from an integer hash both sides compute exactly, and record
a sample of the elements after the last step. The "torch" cases come from torch.optim.RAdam (single-tensor CPU path). The
"paper" and "official" presets have no PyTorch switch, so they come from the small float32
re-implementations below, written from the paper's Algorithm 2 and from the semantics of the
official repository (github.com/LiyuanLucasLiu/RAdam): rectify when rho_t >= 5, skip the update
below, decoupled decay only on updating steps.
"""

import json
import math
import os
import sys

import torch

SHAPE = (3, 4)
OUT = os.path.join(os.path.dirname(__file__), "..", "radam-core", "testdata", "radam_reference.json")


def f32_list(t):
    return [float(x) for x in t.detach().to(torch.float32).reshape(-1).tolist()]


def gradients(gen, steps, low_exp, high_exp):
    """Gradients spanning 10^low_exp..10^high_exp with both signs and exact zeros."""
    grads = []
    for _ in range(steps):
        sign = torch.randn(SHAPE, generator=gen).sign()
        exponent = low_exp + (high_exp - low_exp) * torch.rand(SHAPE, generator=gen)
        g = sign * torch.pow(10.0, exponent)
        g = torch.where(torch.rand(SHAPE, generator=gen) < 0.1, torch.zeros_like(g), g)
        g[0, 0] = 0.0  # one parameter never sees a gradient
        grads.append(g.to(torch.float32))
    return grads


def run_torch(theta0, grads, lrs, beta_1, beta_2, eps, weight_decay, decoupled):
    param = torch.nn.Parameter(theta0.clone())
    opt = torch.optim.RAdam(
        [param],
        lr=lrs[0],
        betas=(beta_1, beta_2),
        eps=eps,
        weight_decay=weight_decay,
        decoupled_weight_decay=decoupled,
        foreach=False,
    )
    thetas, ms, vs = [], [], []
    for g, lr in zip(grads, lrs):
        for group in opt.param_groups:
            group["lr"] = lr
        param.grad = g.clone()
        opt.step()
        thetas.append(f32_list(param))
        state = opt.state[param]
        ms.append(f32_list(state["exp_avg"]))
        vs.append(f32_list(state["exp_avg_sq"]))
    return thetas, ms, vs


def rho_t(beta_2, step):
    rho_inf = 2 / (1 - beta_2) - 1
    return rho_inf, rho_inf - 2 * step * beta_2**step / (1 - beta_2**step)


def run_reimplementation(theta0, grads, lrs, beta_1, beta_2, eps, weight_decay, variant):
    """Algorithm 2 ("paper": threshold 4, momentum phase, decoupled decay every step) or the
    official code ("official": rho_t >= 5, skip below, decoupled decay on updating steps)."""
    theta = theta0.clone()
    m = torch.zeros_like(theta)
    v = torch.zeros_like(theta)
    thetas, ms, vs = [], [], []
    for step, (g, lr) in enumerate(zip(grads, lrs), start=1):
        m = beta_1 * m + (1 - beta_1) * g
        v = beta_2 * v + (1 - beta_2) * g * g
        rho_inf, rho = rho_t(beta_2, step)
        rectify = rho > 4 if variant == "paper" else rho >= 5
        bc1 = 1 - beta_1**step
        bc2 = 1 - beta_2**step
        if rectify:
            theta = theta * (1 - lr * weight_decay)
            r = math.sqrt((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho))
            theta = theta - (lr * r * math.sqrt(bc2) / bc1) * m / (v.sqrt() + eps)
        elif variant == "paper":
            theta = theta * (1 - lr * weight_decay)
            theta = theta - (lr / bc1) * m
        thetas.append(f32_list(theta))
        ms.append(f32_list(m))
        vs.append(f32_list(v))
    return thetas, ms, vs


def case(name, preset, steps, *, seed, lr=1e-3, lrs=None, beta_1=0.9, beta_2=0.999, eps=1e-8,
         weight_decay=0.0, decoupled=False, grad_exponents=(-6, 3)):
    gen = torch.Generator().manual_seed(seed)
    theta0 = torch.randn(SHAPE, generator=gen).to(torch.float32)
    grads = gradients(gen, steps, *grad_exponents)
    lrs = lrs if lrs is not None else [lr] * steps
    if preset == "torch":
        thetas, ms, vs = run_torch(theta0, grads, lrs, beta_1, beta_2, eps, weight_decay, decoupled)
    else:
        thetas, ms, vs = run_reimplementation(theta0, grads, lrs, beta_1, beta_2, eps, weight_decay, preset)
    return {
        "name": name,
        "preset": preset,
        "beta_1": beta_1,
        "beta_2": beta_2,
        "epsilon": eps,
        "weight_decay": weight_decay,
        "decoupled_weight_decay": decoupled,
        "shape": list(SHAPE),
        "lrs": lrs,
        "theta0": f32_list(theta0),
        "grads": [f32_list(g) for g in grads],
        "thetas": thetas,
        "ms": ms,
        "vs": vs,
    }


def mix(i, t):
    """An integer hash of (element, step), the same in Rust (u64 arithmetic modulo 2^32)."""
    h = (i * 2654435761 + t * 97531 + 12345) % 2**32
    h ^= h >> 13
    return (h * 1274126177) % 2**32


def large_case(name, n, steps, *, weight_decay, decoupled, sample_every):
    """A parameter large enough for the fused step's parallel chunks. Values come from `mix`
    times powers of two, so both sides build exactly the same float32 tensors."""
    index = torch.arange(n, dtype=torch.int64)

    def hashed(t):
        h = (index * 2654435761 + t * 97531 + 12345) % 2**32
        h = h ^ (h >> 13)
        h = (h * 1274126177) % 2**32
        return ((h % 2001) - 1000).to(torch.float32)

    theta0 = hashed(0) * 2.0**-9
    scales = [1.0, 2.0**-20, 2.0**10]
    grads = [hashed(t) * (2.0**-10 * scales[t % 3]) for t in range(1, steps + 1)]
    lrs = [1e-2 * (1.0 + t / 10.0) for t in range(steps)]
    param = torch.nn.Parameter(theta0.clone())
    opt = torch.optim.RAdam([param], lr=lrs[0], weight_decay=weight_decay,
                            decoupled_weight_decay=decoupled, foreach=False)
    for g, lr in zip(grads, lrs):
        opt.param_groups[0]["lr"] = lr
        param.grad = g.clone()
        opt.step()
    sample = [i for i in range(n) if i % sample_every == 0] + [n - 1]
    state = opt.state[param]
    pick = lambda t: [float(t.detach()[i]) for i in sample]
    for i in (0, 7, n - 1):  # the tensor hash is the scalar one
        assert float(hashed(3)[i]) == float(mix(i, 3) % 2001 - 1000)
    return {
        "name": name,
        "n": n,
        "steps": steps,
        "weight_decay": weight_decay,
        "decoupled_weight_decay": decoupled,
        "lrs": lrs,
        "sample": sample,
        "theta": pick(param),
        "m": pick(state["exp_avg"]),
        "v": pick(state["exp_avg_sq"]),
    }


def linear_regression(weight_decay, decoupled):
    """The candle-optimisers cross-check: Linear(2->1) from zero, y = 3*x1 + x2 - 2, SSE loss."""
    xs = torch.tensor([[2.0, 1.0], [7.0, 4.0], [-4.0, 12.0], [5.0, 8.0]])
    ys = xs @ torch.tensor([[3.0], [1.0]]) - 2.0
    model = torch.nn.Linear(2, 1)
    with torch.no_grad():
        model.weight.zero_()
        model.bias.zero_()
    opt = torch.optim.RAdam(model.parameters(), lr=1e-3, weight_decay=weight_decay,
                            decoupled_weight_decay=decoupled, foreach=False)
    for _ in range(100):
        opt.zero_grad()
        loss = ((model(xs) - ys) ** 2).sum()
        loss.backward()
        opt.step()
    return {
        "weight_decay": weight_decay,
        "decoupled_weight_decay": decoupled,
        "weight": f32_list(model.weight),
        "bias": f32_list(model.bias),
    }


def main():
    schedule = [1e-3 * (1.5 + math.sin(0.7 * t)) for t in range(60)]
    cases = [
        case("defaults", "torch", 60, seed=1),
        case("beta_2_0.99", "torch", 60, seed=2, beta_2=0.99),
        case("beta_2_0.9999", "torch", 60, seed=3, beta_2=0.9999),
        case("beta_1_zero", "torch", 30, seed=4, beta_1=0.0),
        case("l2_weight_decay", "torch", 60, seed=5, lr=1e-2, weight_decay=0.1),
        case("decoupled_weight_decay", "torch", 60, seed=6, lr=1e-2, weight_decay=0.1, decoupled=True),
        case("changing_lr", "torch", 60, seed=7, lrs=schedule),
        case("tiny_gradients_epsilon", "torch", 40, seed=8, grad_exponents=(-9, -6)),
        case("large_epsilon", "torch", 40, seed=9, eps=1e-3, grad_exponents=(-4, 0)),
        case("long_run", "torch", 400, seed=10, lr=3e-4),
        case("paper_preset", "paper", 40, seed=11, weight_decay=0.05, lr=1e-2),
        case("official_preset", "official", 40, seed=12, weight_decay=0.05, lr=1e-2),
        # A stale learning rate in the decoupled factor, or scalars computed in f32, show here.
        case("changing_lr_l2_decay", "torch", 60, seed=13, lrs=[10 * lr for lr in schedule],
             weight_decay=0.1),
        case("changing_lr_decoupled_decay", "torch", 60, seed=14, lrs=[10 * lr for lr in schedule],
             weight_decay=0.1, decoupled=True),
        case("long_run_beta_2_0.9999", "torch", 600, seed=15, lr=3e-4, beta_2=0.9999),
    ]
    large = [
        large_case("parallel_chunks_l2", 200_003, 12, weight_decay=0.01, decoupled=False,
                   sample_every=997),
        large_case("parallel_chunks_decoupled", 200_003, 12, weight_decay=0.01, decoupled=True,
                   sample_every=997),
    ]
    data = {
        "generator": "tools/radam_reference.py",
        "torch_version": torch.__version__,
        "cases": cases,
        "large_cases": large,
        "linear_regression": [
            linear_regression(0.0, False),
            linear_regression(0.4, False),
            linear_regression(0.4, True),
        ],
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(data, f, separators=(",", ":"))
        f.write("\n")
    for lr in data["linear_regression"]:
        print("linear regression", lr, file=sys.stderr)
    print(f"wrote {len(cases)} cases to {os.path.normpath(OUT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
