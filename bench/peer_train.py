"""Python peer of bench_train: transformers (GPT-Neo 125M, or the --model config.json) + torch.optim.AdamW, same
shape, batch and threads.
Prints one JSON object. Usage: peer_train.py [--model DIR] [--batch 8] [--seq 200] [--steps 3] [--warmup 1]
[--threads 2]"""
import argparse
import json
import resource
import time

import torch
from transformers import AutoConfig, AutoModelForCausalLM, GPTNeoConfig, GPTNeoForCausalLM


def main():
    ap = argparse.ArgumentParser()
    for k, v in dict(batch=8, seq=200, steps=3, warmup=1, threads=2).items():
        ap.add_argument("--" + k, type=int, default=v)
    ap.add_argument("--model", help="a folder whose config.json gives the architecture (default: GPT-Neo 125M)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    cfg = GPTNeoConfig(vocab_size=50257, max_position_embeddings=2048, hidden_size=768, num_layers=12, num_heads=12,
                       attention_types=[[["global", "local"], 6]], window_size=256, embed_dropout=0.0,
                       resid_dropout=0.0, attention_dropout=0.0)
    if a.model:
        cfg = AutoConfig.from_pretrained(a.model)
    model = (AutoModelForCausalLM.from_config(cfg) if a.model else GPTNeoForCausalLM(cfg)).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.01)
    ids = torch.randint(0, cfg.vocab_size, (a.batch, a.seq))
    times = []
    for s in range(a.warmup + a.steps):
        t = time.perf_counter()
        loss = model(ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if s >= a.warmup:
            times.append(time.perf_counter() - t)
    mean = sum(times) / len(times)
    print(json.dumps({"impl": "transformers", "step_s": mean, "tokens_per_s": a.batch * a.seq / mean,
                      "loss": loss.item(), "torch": torch.__version__,
                      "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))


if __name__ == "__main__":
    main()
