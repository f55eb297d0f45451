"""The Python peer of the ICU benchmark: one training epoch and one validation pass, the way the reference
(himalalps/ICU, train_neo_meanwhile_update.py + Datasets_mean.py, spec icu.md §3-§6) runs them, on the same
pairs, model and BERT as the lethe run it is compared with.

  * training: batches of 8 pairs from a seeded permutation; loss = -uw*CE(forget) + lw*CE(neighbour) +
    kl*mean(-sum p*log(q+1e-12)) with p the cached softmax of the original model on the neighbours (computed once
    before the epoch, not timed, as the reference builds it at dataset construction); torch Adam(lr, betas 0.9/0.98).
  * validation, per batch: MA as the reference computes it (a one-token greedy `generate` per position t), EL10
    (greedy `generate` from every start 150..190 to length 200), the 2-beam 50-token continuation of the prefix,
    nltk sentence BLEU on lower-cased NLTKWordTokenizer tokens, BERTScore with bert_score (model folder,
    num_layers) — no idf, no rescaling.

Usage: peer_icu.py --model DIR --pairs pairs.h5 --bert DIR --layers L --threads N [--batch 8] --out FILE.json
"""
import argparse
import json
import time
import warnings

import h5py
import numpy as np
import torch
from transformers import AutoTokenizer, GPTNeoForCausalLM


def ce(logits, labels):
    return torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)).float(),
                                             labels[:, 1:].reshape(-1), ignore_index=-100)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--pairs", required=True)
    ap.add_argument("--bert", required=True)
    ap.add_argument("--layers", type=int, required=True)
    ap.add_argument("--tokenizer", required=True, help="GPT-2 tokenizer folder (vocab.json + merges.txt)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=5e-6)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(42)
    warnings.filterwarnings("ignore")
    from bert_score import score as bert_score
    from nltk.tokenize import NLTKWordTokenizer
    from nltk.translate.bleu_score import sentence_bleu

    with h5py.File(a.pairs, "r") as f:
        forget = torch.from_numpy(f["forget/tokens"][()]).long()
        neighbour = torch.from_numpy(f["neighbours/tokens"][()]).long()
    n, b = len(forget), a.batch
    model = GPTNeoForCausalLM.from_pretrained(a.model)
    tok = AutoTokenizer.from_pretrained(a.tokenizer)
    eos = model.config.eos_token_id
    model.eval()
    with torch.no_grad():  # the reference's probability cache (Datasets_mean.py), not timed
        p_cache = torch.cat([torch.softmax(model(neighbour[i:i + b]).logits, -1) for i in range(0, n, b)])
    labels = lambda x: x.masked_fill(x == eos, -100)
    opt = torch.optim.Adam(model.parameters(), lr=a.lr, betas=(0.9, 0.98), eps=1e-8)

    model.train()
    t0 = time.time()
    perm = torch.randperm(n)
    for s in range(0, n - b + 1, b):
        idx = perm[s:s + b]
        fx, nx, p = forget[idx], neighbour[idx], p_cache[idx]
        opt.zero_grad()
        cu = ce(model(fx).logits, labels(fx))
        out = model(nx)
        cl = ce(out.logits, labels(nx))
        q = torch.softmax(out.logits.float(), -1)
        kl = (-(p * torch.log(q + 1e-12)).sum(-1)).mean()
        loss = -1.0 * cu + 0.5 * cl + 1.0 * kl
        loss.backward()
        opt.step()
    train_s = time.time() - t0

    print(f"peer: training epoch {train_s:.1f} s", flush=True)
    model.eval()
    wt = NLTKWordTokenizer()
    t0 = time.time()
    ma_all, el_all, cands, refs = [], [], [], []
    with torch.no_grad():
        for s in range(0, n, b):
            x = forget[s:s + b]
            # MA: a one-token greedy generate for every position (the reference's loop).
            hits = []
            for t in range(1, x.size(1)):
                g = model.generate(x[:, :t], attention_mask=torch.ones_like(x[:, :t]), max_new_tokens=1,
                                   do_sample=False, pad_token_id=eos)
                hits.append((g[:, -1] == x[:, t]).float())
            ma_all += torch.stack(hits, 1).mean(1).tolist()
            print(f"peer: batch {s // b}: MA done at {time.time() - t0:.1f} s", flush=True)
            # EL10 over starts 150..190.
            el = torch.zeros(len(x))
            for i in range(150, 191):
                g = model.generate(x[:, :i], attention_mask=torch.ones_like(x[:, :i]), max_length=200,
                                   do_sample=False, pad_token_id=eos)[:, i:]
                if g.size(1) < 200 - i:  # every row hit EOS: HF stops early, finished rows are EOS-padded
                    g = torch.nn.functional.pad(g, (0, 200 - i - g.size(1)), value=eos)
                for r in range(len(x)):
                    pred, lab = g[r].tolist(), x[r, i:].tolist()
                    truth = {tuple(lab[k:k + 10]) for k in range(len(lab) - 9)}
                    el[r] += sum(tuple(pred[k:k + 10]) in truth for k in range(len(pred) - 9)) / (len(lab) - 9)
            el_all += (el / 41).tolist()
            print(f"peer: batch {s // b}: EL done at {time.time() - t0:.1f} s", flush=True)
            # 2-beam continuation of the 50-token prefix; BLEU against the true suffix.
            g = model.generate(x[:, 100:150], attention_mask=torch.ones_like(x[:, 100:150]), max_new_tokens=50,
                               num_beams=2, do_sample=False, pad_token_id=eos)[:, 50:]
            for r in range(len(x)):
                cands.append(tok.decode(g[r], skip_special_tokens=False))
                refs.append(tok.decode(x[r, 150:], skip_special_tokens=False))
    bleu = [sentence_bleu([wt.tokenize(r.lower())], wt.tokenize(c.lower())) for c, r in zip(cands, refs)]
    P, R, F = bert_score(cands, refs, model_type=a.bert, num_layers=a.layers, idf=False, batch_size=b,
                         rescale_with_baseline=False, device="cpu")
    val_s = time.time() - t0
    json.dump({"pairs": n, "batch": b, "threads": a.threads, "train_epoch_s": train_s, "validation_s": val_s,
               "ma": float(np.mean(ma_all)), "el": float(np.mean(el_all)), "bleu": float(np.mean(bleu)),
               "bert_f1": float(F.mean())}, open(a.out, "w"), indent=2)
    print(json.dumps(json.load(open(a.out))))


if __name__ == "__main__":
    main()
