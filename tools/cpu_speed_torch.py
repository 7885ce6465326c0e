#!/usr/bin/env python3
"""PyTorch's side of tools/cpu-speed-vs-torch: training steps (forward, backward,
torch.optim.RAdam) of the three benchmark models at the shapes of benches/common/mod.rs.

    python3 tools/cpu_speed_torch.py resnet20|lstm|lstm-adaptive|transformer [--steps N] [--repeats R] [--threads T]

Prints one line per repeat, `<model> <rate> <unit>/s`, each repeat on a fresh model after two
untimed steps, like benches/step_speed.rs. One model per process, so that the process's peak
memory is that model's.
"""

import argparse
import math
import os
import sys
import time
import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
from model_reference import CifarResNet  # noqa: E402

WARMUP_STEPS = 2


class LstmAdaptiveLm(nn.Module):
    """The `small` LM of a real corpus (LstmLmConfig::small): 128-d embeddings, 2 x 256 LSTM,
    dropout 0.2 on the embeddings, between the layers and on the output, and an adaptive softmax
    with cut-offs [V/10, V/3] and divisor 4 (no biases, as ours)."""

    def __init__(self, vocab=30_000, d_embedding=128, d=256, layers=2, dropout=0.2):
        super().__init__()
        self.d = d
        self.embedding = nn.Embedding(vocab, d_embedding)
        self.lstm = nn.LSTM(d_embedding, d, layers, batch_first=True, dropout=dropout)
        self.dropout = nn.Dropout(dropout)
        self.output = nn.AdaptiveLogSoftmaxWithLoss(
            d, vocab, [vocab // 10, vocab // 3], div_value=4.0)

    def loss(self, inputs, targets):
        hidden, _ = self.lstm(self.dropout(self.embedding(inputs)))
        hidden = self.dropout(hidden)
        return self.output(hidden.reshape(-1, self.d), targets.reshape(-1)).loss


def zipf_tokens(count, vocab):
    """The word ids of workloads::zipf_tokens: floor((vocab + 1)^u) - 1, u = (7919 i mod 10007)/10007."""
    words = [math.floor((vocab + 1) ** (((i * 7919) % 10007) / 10007)) - 1 for i in range(count)]
    return torch.tensor([min(max(w, 0), vocab - 1) for w in words])


class LstmLm(nn.Module):
    """2 x 256 LSTM, 256-d embeddings, full softmax over 10 k words, no dropout."""

    def __init__(self, vocab=10_000, d=256, layers=2):
        super().__init__()
        self.embedding = nn.Embedding(vocab, d)
        self.lstm = nn.LSTM(d, d, layers, batch_first=True)
        self.output = nn.Linear(d, vocab)

    def loss(self, inputs, targets):
        hidden, _ = self.lstm(self.embedding(inputs))
        logits = self.output(hidden)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


class TransformerNmt(nn.Module):
    """3 + 3 layers, d 256, feed-forward 1024 (GELU), 4 heads, pre-norm with final norms,
    dropout 0.1, one shared embedding matrix (scaled by sqrt(d), sinusoidal positions),
    label smoothing 0.1, padding id 0."""

    def __init__(self, vocab=8_000, d=256, ff=1024, heads=4, layers=3, dropout=0.1, max_len=1024):
        super().__init__()
        self.d = d
        self.embedding = nn.Embedding(vocab, d)
        nn.init.normal_(self.embedding.weight, 0.0, d ** -0.5)
        position = torch.arange(max_len).unsqueeze(1)
        rate = torch.exp(torch.arange(0, d, 2) * (-math.log(10000.0) / d))
        sinusoids = torch.zeros(max_len, d)
        sinusoids[:, 0::2] = torch.sin(position * rate)
        sinusoids[:, 1::2] = torch.cos(position * rate)
        self.register_buffer("sinusoids", sinusoids)
        self.dropout = nn.Dropout(dropout)
        with warnings.catch_warnings():
            # Nested tensors are an inference fast path that pre-norm layers cannot use anyway.
            warnings.filterwarnings("ignore", message="enable_nested_tensor")
            self.transformer = nn.Transformer(d, heads, layers, layers, ff, dropout,
                                              activation="gelu", batch_first=True, norm_first=True)

    def embed(self, tokens):
        x = self.embedding(tokens) * math.sqrt(self.d) + self.sinusoids[: tokens.shape[1]]
        return self.dropout(x)

    def loss(self, source, target_input, target_output):
        source_padding = source == 0
        target_padding = target_input == 0
        length = target_input.shape[1]
        causal = torch.ones(length, length, dtype=torch.bool).triu(1)
        decoded = self.transformer(self.embed(source), self.embed(target_input), tgt_mask=causal,
                                   src_key_padding_mask=source_padding,
                                   tgt_key_padding_mask=target_padding,
                                   memory_key_padding_mask=source_padding)
        logits = decoded @ self.embedding.weight.t()
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target_output.reshape(-1),
                               ignore_index=0, label_smoothing=0.1)


def workload(name):
    """(model, loss of a step, items per step, unit) at the shapes of benches/common/mod.rs."""
    if name == "resnet20":
        model = CifarResNet(20, 10, "projection")
        images = torch.randn(128, 3, 32, 32)
        labels = torch.arange(128) % 10
        return model, lambda: F.cross_entropy(model(images), labels), 128, "images"
    if name == "lstm":
        batch, seq, vocab = 32, 35, 10_000
        model = LstmLm(vocab)
        tokens = (torch.arange(batch * seq) * 7919 % vocab).reshape(batch, seq)
        targets = (tokens + 1) % vocab
        return model, lambda: model.loss(tokens, targets), batch * seq, "tokens"
    if name == "lstm-adaptive":
        batch, seq, vocab = 32, 35, 30_000
        model = LstmAdaptiveLm(vocab)
        tokens = zipf_tokens(batch * seq + 1, vocab)
        inputs, targets = tokens[:-1].reshape(batch, seq), tokens[1:].reshape(batch, seq)
        return model, lambda: model.loss(inputs, targets), batch * seq, "tokens"
    if name == "transformer":
        batch, length, vocab = 32, 32, 8_000
        model = TransformerNmt(vocab)
        ids = (4 + torch.arange(batch * length) * 7919 % (vocab - 4)).reshape(batch, length)
        return model, lambda: model.loss(ids, ids, ids), batch * length, "tokens"
    sys.exit(f"error: unknown model `{name}`; expected resnet20, lstm, lstm-adaptive or transformer")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    for _ in range(args.repeats):
        model, loss, items, unit = workload(args.model)
        model.train()
        optimizer = torch.optim.RAdam(model.parameters(), lr=1e-3)

        def step():
            optimizer.zero_grad(set_to_none=True)
            loss().backward()
            optimizer.step()

        for _ in range(WARMUP_STEPS):
            step()
        start = time.perf_counter()
        for _ in range(args.steps):
            step()
        seconds = time.perf_counter() - start
        print(f"{args.model} {items * args.steps / seconds:.1f} {unit}/s", flush=True)


if __name__ == "__main__":
    main()
