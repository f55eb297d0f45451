"""GPU peer of lethe_device_check's throughput step: transformers' GPTNeoForCausalLM at the 125M shape (random
init from GPTNeoConfig, nothing downloaded), on the same GPU with the same shapes:
  train_{fp32,bf16}_tokens_per_s     training step, batch 8 x 200, AdamW (weight decay 0.01), grad-norm clip 1.0,
                                     3 warm-up + 10 timed steps between torch.cuda.synchronize() calls;
  generate_{fp32,bf16}_tokens_per_s  greedy generation, batch 8, 100-token prompts, 100 new tokens (no EOS).
bench/device_check.sh merges these into the device check's JSON as lethe/peer ratios.

Read the bf16 ratio knowing that this peer keeps bf16 parameters and bf16 AdamW state (plain torch has no fp32
master copy), while lethe's ZeRO engine keeps fp32 master weights and Adam moments: lethe does more work there.

Usage: device_peer.py [--json OUT] [--batch 8] [--seq 200] [--warmup 3] [--steps 10] [--prompt 100]
                      [--new-tokens 100]
Prints one JSON object (and writes it to OUT). Without a GPU it says so and exits 0.
"""
import argparse
import json
import os
import sys
import time


def write(path, obj):
    print(json.dumps(obj))
    if path:
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=2)
        os.replace(tmp, path)


def config(transformers):
    return transformers.GPTNeoConfig(
        vocab_size=50257, max_position_embeddings=2048, hidden_size=768, num_layers=12, num_heads=12,
        attention_types=[[["global", "local"], 6]], window_size=256, embed_dropout=0.0, resid_dropout=0.0,
        attention_dropout=0.0)


def train_tokens_per_s(torch, transformers, dtype, a):
    torch.manual_seed(0)
    cfg = config(transformers)
    model = transformers.GPTNeoForCausalLM(cfg).to(device="cuda", dtype=dtype).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.01)
    ids = torch.randint(0, cfg.vocab_size, (a.batch, a.seq), device="cuda")

    def step():
        model(ids, labels=ids).loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(a.warmup):
        step()
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(a.steps):
        step()
    torch.cuda.synchronize()
    return a.batch * a.seq * a.steps / (time.perf_counter() - t), model.config._attn_implementation


def generate_tokens_per_s(torch, transformers, dtype, a):
    torch.manual_seed(0)
    cfg = config(transformers)
    model = transformers.GPTNeoForCausalLM(cfg).to(device="cuda", dtype=dtype).eval()
    model.generation_config.eos_token_id = None  # exactly new_tokens tokens, as lethe's run without EOS
    ids = torch.randint(0, cfg.vocab_size, (a.batch, a.prompt), device="cuda")
    kw = dict(attention_mask=torch.ones_like(ids), do_sample=False, num_beams=1, eos_token_id=None,
              pad_token_id=0)
    model.generate(ids, max_new_tokens=4, **kw)  # warm-up
    torch.cuda.synchronize()
    t = time.perf_counter()
    out = model.generate(ids, max_new_tokens=a.new_tokens, **kw)
    torch.cuda.synchronize()
    new = out.shape[1] - a.prompt
    return a.batch * new / (time.perf_counter() - t), new


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", default="", help="also write the results to this file")
    for k, v in dict(batch=8, seq=200, warmup=3, steps=10, prompt=100, new_tokens=100).items():
        ap.add_argument("--" + k.replace("_", "-"), type=int, default=v)
    a = ap.parse_args()
    import torch
    if not torch.cuda.is_available():
        msg = "no CUDA device visible: skipping (this peer needs a GPU)"
        print(msg, file=sys.stderr)
        write(a.json, {"impl": "transformers", "skipped": True, "reason": msg})
        return 0
    import transformers
    out = {"impl": "transformers", "torch": torch.__version__, "transformers": transformers.__version__,
           "gpu": torch.cuda.get_device_name(0), "batch": a.batch, "seq": a.seq, "steps": a.steps,
           "prompt": a.prompt}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        out[f"train_{name}_tokens_per_s"], out["attn_implementation"] = train_tokens_per_s(
            torch, transformers, dtype, a)
        torch.cuda.empty_cache()
        out[f"generate_{name}_tokens_per_s"], out["new_tokens"] = generate_tokens_per_s(
            torch, transformers, dtype, a)
        torch.cuda.empty_cache()
    write(a.json, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
