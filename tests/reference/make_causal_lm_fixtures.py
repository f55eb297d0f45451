"""Builds tiny random GPT-Neo and Llama models with transformers and records what transformers computes on them.

The C++ parity tests (tests/model/causal_lm_parity_test.cpp) load each model folder with lethe and compare against
these tensors. Shapes are chosen to cover the semantics that differ between implementations:
  GPT-Neo
  * window: a local window shorter than the sequence (keys fall out of the window);
  * mixed: non-alternating attention_types, a non-default intermediate_size, head size 16;
  * global: global-only layers, a longer sequence.
  Llama
  * gqa: grouped-query attention 4:1 (8 query heads on 2 key/value heads), untied head;
  * mha: plain multi-head attention with q/k/v/o and MLP biases, `linear` rope scaling, a pad token (its
    embedding row gets no gradient);
  * tied: tie_word_embeddings, an explicit head_dim (heads · head_dim != hidden), GQA 2:1;
  * llama3: `llama3` rope scaling with a large rope_theta over a short original context, a longer sequence.

Usage: make_causal_lm_fixtures.py --out DIR   (writes DIR/<family>/<case>/model/ and .../expected.safetensors)
"""
import argparse
import copy
import pathlib

import torch
from safetensors.torch import save_file
from transformers import GPTNeoConfig, GPTNeoForCausalLM, LlamaConfig, LlamaForCausalLM

GPT_NEO = {
    "window": dict(vocab_size=512, max_position_embeddings=64, hidden_size=32, num_layers=2, num_heads=4,
                   attention_types=[[["global", "local"], 1]], window_size=8, seq=24),
    "mixed": dict(vocab_size=384, max_position_embeddings=64, hidden_size=48, num_layers=3, num_heads=3,
                  attention_types=[[["local", "global"], 1], [["local"], 1]], window_size=5, intermediate_size=100,
                  seq=20),
    "global": dict(vocab_size=300, max_position_embeddings=128, hidden_size=64, num_layers=2, num_heads=2,
                   attention_types=[[["global"], 2]], window_size=256, seq=40),
}
LLAMA = {
    "gqa": dict(vocab_size=512, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=8,
                num_key_value_heads=2, max_position_embeddings=128, seq=24),
    "mha": dict(vocab_size=384, hidden_size=48, intermediate_size=80, num_hidden_layers=3, num_attention_heads=4,
                num_key_value_heads=4, attention_bias=True, mlp_bias=True, pad_token_id=0,
                rope_scaling={"rope_type": "linear", "factor": 2.0}, max_position_embeddings=64, seq=20),
    "tied": dict(vocab_size=300, hidden_size=48, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, head_dim=16, tie_word_embeddings=True, max_position_embeddings=64, seq=20),
    "llama3": dict(vocab_size=320, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                   num_key_value_heads=2, rope_theta=500000.0, max_position_embeddings=256,
                   rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                 "high_freq_factor": 4.0, "original_max_position_embeddings": 32}, seq=40),
}
BATCH = 3
NEW_TOKENS = 12


def build(family: str, case: dict, seed: int):
    torch.manual_seed(seed)
    arch = {k: v for k, v in case.items() if k != "seq"}
    special = dict(bos_token_id=arch["vocab_size"] - 1, eos_token_id=arch["vocab_size"] - 1)
    # A wider init than the default 0.02 makes next-token distributions decisive, so greedy and beam choices are
    # not decided by float rounding.
    if family == "gpt_neo":
        cfg = GPTNeoConfig(**arch, initializer_range=0.2, embed_dropout=0.0, resid_dropout=0.0,
                           attention_dropout=0.0, **special)
        model = GPTNeoForCausalLM(cfg)
    else:
        cfg = LlamaConfig(**arch, initializer_range=0.2, rms_norm_eps=1e-5, **special)
        model = LlamaForCausalLM(cfg)
        # RMSNorm weights start at 1; random ones make the parity test see a wrong norm.
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name.endswith("norm.weight"):
                    p.uniform_(0.5, 1.5)
    cfg._attn_implementation = "eager"
    return model.eval()


def padded(ids: torch.Tensor, lengths: list, left: bool) -> tuple:
    """Keeps the first lengths[b] tokens of row b and pads the rest (left or right); pad id = 0."""
    b, t = ids.shape
    out, mask = torch.zeros_like(ids), torch.zeros_like(ids)
    for r, n in enumerate(lengths):
        sl = slice(t - n, t) if left else slice(0, n)
        out[r, sl], mask[r, sl] = ids[r, :n], 1
    return out, mask


def generate(model, ids, mask, **kw):
    eos = kw.get("eos_token_id")
    kw.setdefault("pad_token_id", eos[0] if isinstance(eos, list) else eos)
    with torch.no_grad():
        return model.generate(ids, attention_mask=mask, max_new_tokens=NEW_TOKENS, do_sample=False, **kw)


def tied(model, pname: str) -> bool:
    """A tied head has no gradient of its own: it is part of the token embedding's."""
    return pname == "lm_head.weight" and model.config.tie_word_embeddings


def record(family: str, name: str, case: dict, out: pathlib.Path, seed: int) -> None:
    model = build(family, case, seed)
    d = out / family / name
    model.save_pretrained(d / "model", safe_serialization=True)
    # The same weights as shards (index + several files), and rounded to bf16 in a bf16 file.
    model.save_pretrained(d / "model_sharded", safe_serialization=True, max_shard_size="40KB")
    rounded = copy.deepcopy(model).to(torch.bfloat16)
    rounded.save_pretrained(d / "model_bf16", safe_serialization=True)
    # Loaded back in fp32 as a user would (a fresh model: a .float() copy would keep buffers such as Llama's rotary
    # frequencies rounded to bf16 by the .to(bfloat16) above).
    rounded = type(model).from_pretrained(d / "model_bf16", dtype=torch.float32, attn_implementation="eager").eval()
    v, t = case["vocab_size"], case["seq"]
    g = torch.Generator().manual_seed(seed + 1)
    ids = torch.randint(0, v - 1, (BATCH, t), generator=g)
    exp = {"ids": ids}

    with torch.no_grad():
        exp["logits"] = model(ids).logits
        exp["logits_bf16_weights"] = rounded(ids).logits
        hs = model(ids, output_hidden_states=True).hidden_states
        exp["hidden_first"], exp["hidden_last"] = hs[0], hs[-1]

    # Gradients of the LM loss (labels = inputs, shifted inside).
    model.zero_grad()
    loss = model(ids, labels=ids).loss
    loss.backward()
    exp["loss"] = loss.detach().reshape(1)
    for pname, p in model.named_parameters():
        if not tied(model, pname):
            exp["grad." + pname] = p.grad.detach().clone()
    model.zero_grad()
    # The same for a single 12-token row: few rows take a different GEMM orientation in lethe.
    small = ids[:1, :12].clone()
    exp["small_ids"] = small
    model(small, labels=small).loss.backward()
    for pname, p in model.named_parameters():
        if not tied(model, pname):
            exp["small_grad." + pname] = p.grad.detach().clone()
    model.zero_grad()

    lengths = [t, t - 5, t // 2]
    with torch.no_grad():
        rp_ids, rp_mask = padded(ids, lengths, left=False)
        exp["rp_ids"], exp["rp_mask"] = rp_ids, rp_mask
        exp["rp_logits"] = model(rp_ids, attention_mask=rp_mask).logits
        lp_ids, lp_mask = padded(ids, lengths, left=True)
        pos = (lp_mask.cumsum(-1) - 1).masked_fill(lp_mask == 0, 0)
        exp["lp_ids"], exp["lp_mask"], exp["lp_pos"] = lp_ids, lp_mask, pos
        exp["lp_logits"] = model(lp_ids, attention_mask=lp_mask, position_ids=pos).logits

    # Generation from left-padded prompts. First without EOS, then with an EOS that greedy really emits mid-way
    # (token 4 of row 0), so finished rows and EOS bookkeeping are exercised.
    prompt_len = 10
    gen_ids, gen_mask = padded(ids[:, :prompt_len], [prompt_len, prompt_len - 3, 4], left=True)
    exp["gen_ids"], exp["gen_mask"] = gen_ids, gen_mask
    exp["greedy_noeos"] = generate(model, gen_ids, gen_mask, eos_token_id=None, pad_token_id=0)
    eos = int(exp["greedy_noeos"][0, prompt_len + 3])
    exp["eos"] = torch.tensor([eos])
    exp["greedy"] = generate(model, gen_ids, gen_mask, eos_token_id=eos)
    exp["beam2"] = generate(model, gen_ids, gen_mask, eos_token_id=eos, num_beams=2)
    exp["beam3_lp0.5_early"] = generate(model, gen_ids, gen_mask, eos_token_id=eos, num_beams=3,
                                        length_penalty=0.5, early_stopping=True)
    exp["beam2_never"] = generate(model, gen_ids, gen_mask, eos_token_id=eos, num_beams=2, early_stopping="never")
    # A list of EOS ids (Llama-3 Instruct stops on three): the first EOS plus a token greedy emits in another row,
    # so rows end on either.
    other = int(exp["greedy_noeos"][1, prompt_len + 2])
    exp["eos_list"] = torch.tensor([eos, other])
    exp["greedy_eos_list"] = generate(model, gen_ids, gen_mask, eos_token_id=[eos, other])
    exp["beam2_eos_list"] = generate(model, gen_ids, gen_mask, eos_token_id=[eos, other], num_beams=2)

    # bf16: the same inputs through a bf16 copy.
    with torch.no_grad():
        exp["bf16_logits"] = model.to(torch.bfloat16)(ids).logits.float()

    save_file({k: x.contiguous() for k, x in exp.items()}, str(d / "expected.safetensors"))
    print(f"{family}/{name}: loss {loss.item():.6f}, eos {eos}, greedy {exp['greedy'][0, prompt_len:].tolist()}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=pathlib.Path)
    args = ap.parse_args()
    torch.set_num_threads(1)
    for i, (name, case) in enumerate(GPT_NEO.items()):
        record("gpt_neo", name, case, args.out, seed=100 + i)
    for i, (name, case) in enumerate(LLAMA.items()):
        record("llama", name, case, args.out, seed=200 + i)


if __name__ == "__main__":
    main()
