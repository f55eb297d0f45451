"""Single-process reference for the distributed engine: transformers' GPTNeoForCausalLM + torch.optim.AdamW +
torch.nn.utils.clip_grad_norm_, fed the same global batches lethe's sampler draws (src/data/sampler.cpp,
replayed here), with the same learning-rate schedule (src/zero/schedule.cpp). Writes the final weights as
safetensors so tests can compare them with what `lethe train` produced at any world size and ZeRO stage.

Usage: zero_reference.py --model DIR --data F.npy --out F.safetensors --steps N --global-batch G --seed S
           [--seq-len T] [--max-rows R] [--lr X] [--schedule constant|linear|cosine] [--warmup W]
           [--min-lr-ratio M] [--weight-decay D] [--beta1 B1] [--beta2 B2] [--eps E] [--clip C] [--no-shuffle]
"""
import argparse
import math

import numpy as np
import torch
from safetensors.torch import save_file
from transformers import GPTNeoForCausalLM

MASK = (1 << 64) - 1


def splitmix64(state):
    state = (state + 0x9E3779B97F4A7C15) & MASK
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return state, z ^ (z >> 31)


def permutation(n, seed, epoch, shuffle):
    p = list(range(n))
    if not shuffle:
        return p
    state = (seed ^ ((epoch * 0xD1B54A32D192ED03) & MASK)) & MASK
    for i in range(n - 1, 0, -1):
        state, r = splitmix64(state)
        j = r % (i + 1)
        p[i], p[j] = p[j], p[i]
    return p


def global_batches(n, g, seed, shuffle):
    epoch = 0
    while True:
        p = permutation(n, seed, epoch, shuffle)
        for b in range(n // g):
            yield p[b * g:(b + 1) * g]
        epoch += 1


def lr_at(a, step):
    if step < a.warmup:
        return a.lr * (step + 1) / a.warmup
    if a.schedule == "constant":
        return a.lr
    span = max(a.steps - a.warmup, 1)
    p = min(max((step - a.warmup) / span, 0.0), 1.0)
    shape = 1.0 - p if a.schedule == "linear" else (1.0 + math.cos(math.pi * p)) / 2.0
    return a.lr * (a.min_lr_ratio + (1.0 - a.min_lr_ratio) * shape)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--global-batch", type=int, required=True)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--seq-len", type=int, default=0)
    ap.add_argument("--max-rows", type=int, default=0)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--schedule", default="constant")
    ap.add_argument("--warmup", type=int, default=0)
    ap.add_argument("--min-lr-ratio", type=float, default=0.0)
    ap.add_argument("--weight-decay", type=float, default=0.0)
    ap.add_argument("--beta1", type=float, default=0.9)
    ap.add_argument("--beta2", type=float, default=0.999)
    ap.add_argument("--eps", type=float, default=1e-8)
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--no-shuffle", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(1)
    rows = np.load(a.data).astype(np.int64)
    if a.max_rows:
        rows = rows[:a.max_rows]
    if a.seq_len:
        rows = rows[:, :a.seq_len]
    rows = torch.from_numpy(np.ascontiguousarray(rows))
    model = GPTNeoForCausalLM.from_pretrained(a.model, torch_dtype=torch.float32).train()
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, betas=(a.beta1, a.beta2), eps=a.eps,
                            weight_decay=a.weight_decay, fused=True)  # the same kernel lethe runs
    batches = global_batches(len(rows), a.global_batch, a.seed, not a.no_shuffle)
    losses = []
    for step in range(a.steps):
        ids = rows[next(batches)]
        loss = model(ids, labels=ids).loss
        loss.backward()
        if a.clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), a.clip)
        for group in opt.param_groups:
            group["lr"] = lr_at(a, step)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    state["losses"] = torch.tensor(losses, dtype=torch.float64)
    save_file(state, a.out)


if __name__ == "__main__":
    main()
