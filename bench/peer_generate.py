"""Python peer of bench_generate: transformers generate (GPT-Neo 125M, or the --model config.json), same shape,
prompts and threads.
Prints one JSON object per mode. Usage: peer_generate.py [--model DIR] [--batch 8] [--prompt 50] [--new 50] [--beams
2] [--reps 2]"""
import argparse
import json
import time

import torch
from transformers import AutoConfig, AutoModelForCausalLM, GPTNeoConfig, GPTNeoForCausalLM


def main():
    ap = argparse.ArgumentParser()
    for k, v in dict(batch=8, prompt=50, new=50, beams=2, reps=2, threads=2).items():
        ap.add_argument("--" + k, type=int, default=v)
    ap.add_argument("--model", help="a folder whose config.json gives the architecture (default: GPT-Neo 125M)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    cfg = GPTNeoConfig(vocab_size=50257, max_position_embeddings=2048, hidden_size=768, num_layers=12, num_heads=12,
                       attention_types=[[["global", "local"], 6]], window_size=256)
    if a.model:
        cfg = AutoConfig.from_pretrained(a.model)
    model = (AutoModelForCausalLM.from_config(cfg) if a.model else GPTNeoForCausalLM(cfg)).eval()
    ids = torch.randint(0, cfg.vocab_size - 1, (a.batch, a.prompt))
    mask = torch.ones_like(ids)
    for k in (1, a.beams):
        kw = dict(attention_mask=mask, max_new_tokens=a.new, num_beams=k, do_sample=False,
                  eos_token_id=cfg.eos_token_id,
                  pad_token_id=cfg.eos_token_id if cfg.eos_token_id is not None else 0)
        with torch.no_grad():
            model.generate(ids, **kw)
            best = float("inf")
            for _ in range(a.reps):
                t = time.perf_counter()
                out = model.generate(ids, **kw)
                best = min(best, time.perf_counter() - t)
        produced = out.shape[1] - a.prompt
        print(json.dumps({"impl": "transformers", "num_beams": k, "seconds": best, "batch": a.batch,
                          "new_tokens": produced, "tokens_per_s": a.batch * produced / best}))


if __name__ == "__main__":
    main()
