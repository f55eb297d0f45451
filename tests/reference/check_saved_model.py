"""Loads a folder lethe saved with transformers' AutoModelForCausalLM.from_pretrained and checks its logits.

Usage: check_saved_model.py MODEL_DIR EXPECTED.safetensors   (exit 0 = loads and max |Δlogits| ≤ 1e-4)
"""
import sys

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM


def main() -> int:
    model_dir, expected = sys.argv[1], sys.argv[2]
    model = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="eager").eval()
    exp = load_file(expected)
    with torch.no_grad():
        logits = model(exp["ids"]).logits
    diff = (logits - exp["logits"]).abs().max().item()
    print(f"transformers loaded {model_dir}: max |Δlogits| = {diff:.3e}")
    return 0 if diff <= 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main())
