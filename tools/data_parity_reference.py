#!/usr/bin/env python3
"""PyTorch references for the data pipelines' parity tests (datasets/src/image.rs, lm.rs).

Writes datasets/testdata/data_parity.json:

  cifar   the paper's CIFAR transforms (RAdam repository, cifar_imagenet/cifar.py):
          transforms.RandomCrop(32, padding=4), RandomHorizontalFlip(), ToTensor(),
          Normalize((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)), computed here with the
          operations torchvision applies (zero padding of the uint8 image, a crop at offset
          (top, left) of the padded image, a flip of the width, division by 255, then
          (x - mean) / std in float32) for fixed offsets and flips on one random image, so that
          the test needs neither torchvision nor its random draws.
  lm      the paper's LM batching (RAdam repository, language-model/model_word_ada/dataset.py,
          LargeDataset.open_next): of a token stream of n tokens, the first
          r = (n - 1) - (n - 1) % (B * L) transitions, x = data[0:r].view(B, -1, L) and
          y = data[1:r+1] likewise, window k holding x[:, k, :] (B streams, L tokens each).
  nmt     the paper's NMT batching, fairseq as of the paper (2019): LanguagePairDataset's
          ordered_indices without shuffling (a stable sort by target length, then a stable
          sort by source length, both counting the end-of-sentence token), data_utils'
          batch_by_size with --max-tokens (a batch of n pairs holds n * max(longest source,
          longest target) <= max_tokens tokens; required_batch_size_multiple 1) and collate:
          rows in descending source length, sources padded on the left, targets and decoder
          inputs on the right, the decoder input the target with its end-of-sentence moved to
          the front, ntokens the target tokens. Token ids are ours (padding 0, end of sentence
          2); fairseq's dictionary numbers them 1 and 2.

Run from the repository root:

    pip install torch
    python3 tools/data_parity_reference.py
"""

import json
import os

import torch

OUT = os.path.join(os.path.dirname(__file__), "..", "datasets", "testdata", "data_parity.json")
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2023, 0.1994, 0.2010)


def cifar_reference():
    generator = torch.Generator().manual_seed(7)
    image = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8, generator=generator)
    mean = torch.tensor(MEAN, dtype=torch.float32).view(3, 1, 1)
    std = torch.tensor(STD, dtype=torch.float32).view(3, 1, 1)
    cases = []
    for top, left, flip in [(4, 4, False), (0, 0, False), (8, 8, True), (2, 7, True), (8, 0, False), (5, 1, True)]:
        padded = torch.nn.functional.pad(image, (4, 4, 4, 4), value=0)
        crop = padded[:, top:top + 32, left:left + 32]
        if flip:
            crop = crop.flip(-1)
        tensor = crop.to(torch.float32).div(255)
        normalised = (tensor - mean) / std
        cases.append({"top": top, "left": left, "flip": flip, "values": normalised.reshape(-1).tolist()})
    return {"pixels": image.reshape(-1).tolist(), "mean": MEAN, "std": STD, "cases": cases}


def lm_reference():
    cases = []
    for n, batch, length in [(103, 4, 5), (250, 3, 7), (64, 2, 8)]:
        data = torch.arange(n) * 7 % 101  # distinct enough to tell positions apart
        r = (n - 1) - (n - 1) % (batch * length)
        x = data[0:r].view(batch, -1, length).transpose(0, 1)
        y = data[1:r + 1].view(batch, -1, length).transpose(0, 1)
        cases.append({
            "tokens": data.tolist(), "batch": batch, "length": length,
            "inputs": x.tolist(), "targets": y.tolist(),
        })
    return cases


PAD, EOS = 0, 2


def nmt_reference():
    generator = torch.Generator().manual_seed(5)
    cases = []
    for pairs_count, max_tokens in [(23, 24), (40, 50)]:
        pairs = []
        for _ in range(pairs_count):
            source_len, target_len = (int(x) for x in torch.randint(1, 9, (2,), generator=generator))
            # Words 3..99: 0, 1 and 2 are padding, beginning and end of sentence.
            pairs.append((torch.randint(3, 100, (source_len,), generator=generator).tolist(),
                          torch.randint(3, 100, (target_len,), generator=generator).tolist()))
        source_sizes = [len(s) + 1 for s, _ in pairs]
        target_sizes = [len(t) + 1 for _, t in pairs]
        # ordered_indices (shuffle off): mergesort by target size, then by source size.
        order = sorted(range(len(pairs)), key=lambda i: target_sizes[i])
        order = sorted(order, key=lambda i: source_sizes[i])
        # batch_by_size, required_batch_size_multiple 1.
        batches, batch, sample_lens = [], [], []
        for index in order:
            sample_lens.append(max(source_sizes[index], target_sizes[index]))
            sample_len = max(sample_lens)
            if batch and (len(batch) + 1) * sample_len > max_tokens:
                batches.append(batch)
                batch, sample_lens = [], sample_lens[-1:]
            batch.append(index)
        if batch:
            batches.append(batch)
        collated = []
        for batch in batches:
            # collate: rows by descending source length (a stable sort of the batch's order).
            rows = sorted(batch, key=lambda i: -source_sizes[i])
            source_width = max(source_sizes[i] for i in rows)
            target_width = max(target_sizes[i] for i in rows)
            collated.append({
                "ids": rows,
                "src_tokens": [[PAD] * (source_width - source_sizes[i]) + pairs[i][0] + [EOS] for i in rows],
                "target": [pairs[i][1] + [EOS] + [PAD] * (target_width - target_sizes[i]) for i in rows],
                "prev_output_tokens": [[EOS] + pairs[i][1] + [PAD] * (target_width - target_sizes[i]) for i in rows],
                "ntokens": sum(target_sizes[i] for i in rows),
            })
        cases.append({"pairs": pairs, "max_tokens": max_tokens, "batches": collated})
    return cases


def main():
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump({"cifar": cifar_reference(), "lm": lm_reference(), "nmt": nmt_reference()}, f)
        f.write("\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
