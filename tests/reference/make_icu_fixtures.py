#!/usr/bin/env python3
"""Writes the oracle for lethe's ICU pieces: extraction metrics (MA, EL_n), the ICU loss terms and one Adam step,
beam-2 generation, nltk BLEU and nltk's word tokenizer.

Contents:
  DIR/model/                a tiny GPT-Neo (vocab 300, EOS = BOS = 299), first fine-tuned for 60 Adam steps on rows
                            0 and 3 of `rows` so that those rows are partly memorised (MA and EL well above chance)
  DIR/expected.safetensors  int64 / float64 tensors, all computed with the saved model:
      rows [4,40]           random ids in [0,298]; row 1 ends in 3 EOS, row 2 starts with 2 EOS
      ma [4]                per row: mean over t=1..T-1 of [argmax logits[t-1] == rows[t]] (one unmasked forward)
      el_icu [4], el_ku [4] EL_10 with first start 20 (ICU shape) and 1 (KU shape): for i in first..T-n greedy
                            generate T-i tokens from rows[:i] (pure argmax over the full vocab, no EOS stop, no
                            masking), overlap(i) = #pred n-grams (with multiplicity) in the set of label n-grams
                            / (T-i-n+1); EL = sum_i overlap(i) / (T-n-first+1)
      forget_ids, neighbour_ids [3,40]   random, each with some 299 inside
      ce_u, ce_l, kl, total [1]          ICU loss terms (uw 1, lw 0.5, kl 1); p = frozen softmax of the saved model
                                         on neighbour_ids; total = -uw*ce_u + lw*ce_l + klw*kl
      active [3] = [1,0,1]; ce_u_active, ce_l_active, kl_active, total_active [1]: the same on rows 0 and 2 only
      ce_u_after, ce_l_after, kl_after, total_after [1]: after ONE torch Adam step (lr 1e-3, betas (0.9, 0.98),
                                         eps 1e-8) on the full-batch total, p unchanged
      forget_padded, neighbour_padded, forget_mask, neighbour_mask [3,40]: the pairs left-padded with EOS
                                         (forget row 1 by 4, neighbour rows 0 and 2 by 3 and 6) under masks;
      ce_u_masked, ce_l_masked, kl_masked, total_masked [1]: the ICU terms on them with the masks (p too)
      beam_prompt [3,10], beam_out [3,10]: num_beams 2, 10 new tokens, eos = pad = 299, length_penalty 1,
                                         early_stopping False, no attention mask; new tokens only (299-padded)
  DIR/bleu.json  {"bleu": [{"reference", "hypothesis", "bleu"}], "tokenize": [{"text", "tokens"}]}
                 bleu = nltk sentence_bleu([reference], hypothesis) with default weights and no smoothing;
                 tokens = nltk NLTKWordTokenizer().tokenize(text.lower()). Real-text cases come from
                 icu/exp/exp0/lm_extraction_128_0.csv under the shared data folder (synthetic only if missing).

Usage: make_icu_fixtures.py --out DIR [--shared-data DIR]
"""
import argparse
import csv
import json
import os
import pathlib
import random
import warnings

import torch
from safetensors.torch import save_file
from transformers import GPTNeoConfig, GPTNeoForCausalLM

EOS = 299
T = 40
N_GRAM = 10
UW, LW, KLW = 1.0, 0.5, 1.0
CSV_REL = "icu/exp/exp0/lm_extraction_128_0.csv"


def build() -> GPTNeoForCausalLM:
    cfg = GPTNeoConfig(vocab_size=300, max_position_embeddings=64, hidden_size=32, num_layers=2, num_heads=4,
                       attention_types=[[["global", "local"], 1]], window_size=16, initializer_range=0.2,
                       embed_dropout=0.0, resid_dropout=0.0, attention_dropout=0.0, bos_token_id=EOS,
                       eos_token_id=EOS)
    cfg._attn_implementation = "eager"
    return GPTNeoForCausalLM(cfg)


def lm_labels(ids: torch.Tensor) -> torch.Tensor:
    return ids.masked_fill(ids == EOS, -100)


def memorise(model, ids: torch.Tensor, steps: int = 60, lr: float = 5e-4) -> None:
    """Plain LM fine-tuning so the metrics have something to find. lr 1e-2 memorises both rows completely within
    10 steps (MA = EL = 1); 60 steps at 5e-4 leave them partly memorised, so the overlaps are fractional."""
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        model(ids, labels=lm_labels(ids)).loss.backward()
        opt.step()
    model.eval()


def greedy(model, prompt: torch.Tensor, new: int) -> torch.Tensor:
    """model.generate greedy, exactly `new` tokens; returns the new tokens [B, new].

    eos_token_id=None: no stopping and no EOS suppression (min_new_tokens is then inert), i.e. pure argmax. An
    explicit all-ones mask: with eos None and pad 299 HF would otherwise infer a mask from the leading EOS of
    row 2, but the definition is "no attention mask"."""
    with torch.no_grad():
        out = model.generate(prompt, attention_mask=torch.ones_like(prompt), do_sample=False, num_beams=1,
                             max_new_tokens=new, min_new_tokens=new, eos_token_id=None, pad_token_id=EOS)
    assert out.shape[1] == prompt.shape[1] + new, out.shape
    return out[:, prompt.shape[1]:]


def greedy_manual(model, prompt: torch.Tensor, new: int) -> torch.Tensor:
    """The same without generate (full forward each step): a cross-check of the settings above. Also returns the
    smallest top-1 minus top-2 logit gap met on the way (how decisive the argmax choices are)."""
    seq, gap = prompt, float("inf")
    with torch.no_grad():
        for _ in range(new):
            last = model(seq).logits[:, -1]
            top = last.topk(2, -1).values
            gap = min(gap, float((top[:, 0] - top[:, 1]).min()))
            seq = torch.cat([seq, last.argmax(-1, keepdim=True)], 1)
    return seq[:, prompt.shape[1]:], gap


def ngrams(seq: list, n: int) -> list:
    return [tuple(seq[k:k + n]) for k in range(len(seq) - n + 1)]


def extraction_likelihood(model, rows: torch.Tensor, n: int, first: int) -> tuple:
    b, t = rows.shape
    total = [0.0] * b
    manual_ok, min_gap = True, float("inf")
    for i in range(first, t - n + 1):
        pred = greedy(model, rows[:, :i], t - i)
        manual, gap = greedy_manual(model, rows[:, :i], t - i)
        manual_ok &= torch.equal(pred, manual)
        min_gap = min(min_gap, gap)
        for r in range(b):
            label_set = set(ngrams(rows[r, i:].tolist(), n))
            p = ngrams(pred[r].tolist(), n)
            total[r] += sum(1 for g in p if g in label_set) / (t - i - n + 1)
    count = t - n - first + 1
    print(f"EL first={first}: smallest greedy logit gap {min_gap:.4g}")
    return torch.tensor([x / count for x in total], dtype=torch.float64), manual_ok


def memorisation_accuracy(model, rows: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        logits = model(rows).logits[:, :-1]
    top = logits.topk(2, -1).values
    print(f"MA: smallest argmax logit gap {float((top[..., 0] - top[..., 1]).min()):.4g}")
    return (logits.argmax(-1) == rows[:, 1:]).double().mean(1)


def icu_terms(model, forget, neighbour, p, forget_mask=None, neighbour_mask=None) -> dict:
    ce_u = model(forget, attention_mask=forget_mask, labels=lm_labels(forget)).loss
    out = model(neighbour, attention_mask=neighbour_mask, labels=lm_labels(neighbour))
    ce_l = out.loss
    q = torch.softmax(out.logits.float(), -1)
    kl = (-(p * torch.log(q + 1e-12)).sum(-1)).mean()
    return {"ce_u": ce_u, "ce_l": ce_l, "kl": kl, "total": -UW * ce_u + LW * ce_l + KLW * kl}


def ce_manual(model, ids) -> torch.Tensor:
    logits = model(ids).logits[:, :-1].float()
    labels = lm_labels(ids)[:, 1:]
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                             ignore_index=-100)


def scalars(terms: dict, suffix: str) -> dict:
    return {k + suffix: v.detach().double().reshape(1) for k, v in terms.items()}


def model_fixtures(out: pathlib.Path) -> None:
    torch.manual_seed(1241)  # a seed whose greedy choices all have a logit gap > 5e-4
    model = build()
    g = torch.Generator().manual_seed(5)
    rows = torch.randint(0, EOS, (4, T), generator=g)
    rows[1, -3:] = EOS
    rows[2, :2] = EOS
    memorise(model, rows[[0, 3]])
    model.save_pretrained(out / "model", safe_serialization=True)
    exp = {"rows": rows}

    exp["ma"] = memorisation_accuracy(model, rows)
    exp["el_icu"], ok_icu = extraction_likelihood(model, rows, N_GRAM, first=20)
    exp["el_ku"], ok_ku = extraction_likelihood(model, rows, N_GRAM, first=1)
    assert ok_icu and ok_ku, "generate() and the manual greedy loop disagree"

    # Does plain argmax ever pick EOS in these generations? (If not, "EOS suppressed" and "EOS allowed" agree.)
    with torch.no_grad():
        eos_picked = bool((model(rows).logits.argmax(-1) == EOS).any())

    beam_prompt = torch.randint(0, EOS, (3, 10), generator=g)
    with torch.no_grad():
        beam = model.generate(beam_prompt, num_beams=2, max_new_tokens=10, do_sample=False, pad_token_id=EOS,
                              eos_token_id=EOS, length_penalty=1.0, early_stopping=False)
    beam = beam[:, beam_prompt.shape[1]:]
    if beam.shape[1] < 10:  # every beam finished early: HF stops; pad like HF pads finished rows
        beam = torch.cat([beam, torch.full((3, 10 - beam.shape[1]), EOS, dtype=beam.dtype)], 1)
    exp["beam_prompt"], exp["beam_out"] = beam_prompt, beam

    forget = torch.randint(0, EOS, (3, T), generator=g)
    neighbour = torch.randint(0, EOS, (3, T), generator=g)
    forget[0, 5], forget[1, 17:20], forget[2, -1] = EOS, EOS, EOS
    neighbour[0, 0], neighbour[1, 30], neighbour[2, 10:12] = EOS, EOS, EOS
    exp["forget_ids"], exp["neighbour_ids"] = forget, neighbour
    with torch.no_grad():
        p = torch.softmax(model(neighbour).logits.float(), -1)
        assert torch.allclose(ce_manual(model, forget), model(forget, labels=lm_labels(forget)).loss)

    active = torch.tensor([1, 0, 1])
    exp["active"] = active
    keep = active.bool()
    with torch.no_grad():
        exp.update(scalars(icu_terms(model, forget[keep], neighbour[keep], p[keep]), "_active"))

    # ICU's re-encoded rows (Datasets_mean.py): left-padded with EOS under an attention mask; the KL term
    # still averages over every position, padding included.
    fp, npad = forget.clone(), neighbour.clone()
    fm, nm = torch.ones_like(forget), torch.ones_like(neighbour)
    fp[1, :4], fm[1, :4] = EOS, 0
    npad[0, :3], nm[0, :3] = EOS, 0
    npad[2, :6], nm[2, :6] = EOS, 0
    exp["forget_padded"], exp["forget_mask"], exp["neighbour_padded"], exp["neighbour_mask"] = fp, fm, npad, nm
    with torch.no_grad():
        p_masked = torch.softmax(model(npad, attention_mask=nm).logits.float(), -1)
        exp.update(scalars(icu_terms(model, fp, npad, p_masked, fm, nm), "_masked"))

    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.98), eps=1e-8)
    opt.zero_grad()
    terms = icu_terms(model, forget, neighbour, p)
    exp.update(scalars(terms, ""))
    terms["total"].backward()
    opt.step()
    with torch.no_grad():
        exp.update(scalars(icu_terms(model, forget, neighbour, p), "_after"))

    save_file({k: v.contiguous() for k, v in exp.items()}, str(out / "expected.safetensors"))
    fmt = lambda x: "[" + ", ".join(f"{v:.6f}" for v in x.tolist()) + "]"
    print(f"ma     {fmt(exp['ma'])}")
    print(f"el_icu {fmt(exp['el_icu'])}")
    print(f"el_ku  {fmt(exp['el_ku'])}")
    print(f"argmax ever EOS on rows: {eos_picked}")
    for s in ("", "_active", "_masked", "_after"):
        print(f"terms{s or ' (before)'}: " + ", ".join(f"{k}{s}={exp[k + s].item():.8f}"
                                                      for k in ("ce_u", "ce_l", "kl", "total")))
    print(f"beam_out {beam.tolist()}")


# --------------------------------------------------------------------------------------------------- nltk part

SYNTHETIC = [
    ("the cat sat on the mat", "the cat sat on the mat"),
    ("the cat sat on the mat today", "the cat sat on the mat"),
    ("the cat sat on the mat", "the cat sat on the mat today and yesterday"),
    ("it is a guide to action that ensures that the military will forever heed party commands",
     "it is a guide to action which ensures that the military always obeys the commands of the party"),
    ("a b c d e f g h", "a b c d x f g h"),
    ("a b c d e f g h", "a b c x e f y h"),
    ("a b c d e f g h", "h g f e d c b a"),
    ("a b c d e f g h", "a c e g b d f h"),
    ("one two three four five", "six seven eight nine ten"),
    ("a b c d e", "a b"),
    ("a b c d e", "a b c"),
    ("a b c", "a b c"),
    ("a b", "a b"),
    ("a", "a"),
    ("a b c d e", ""),
    ("a b c d e f", "a b c d e f a b c d e f"),
    ("a b c d e f g h i j", "a b c d e"),
    ("the the the the", "the the the the the the the"),
    ("the cat is on the mat", "the the the the the the the"),
    ("x y z w x y z w", "x y z w x y z w x y z w"),
    ("< | endoftext | > hello world foo", "< | endoftext | > hello world bar"),
    ("<|endoftext|> <|endoftext|> a b c", "<|endoftext|> a b c <|endoftext|>"),
    ("< > < > < >", "> < > < > <"),
    ("a b c d", "a b c d e"),
    ("a b c d e f g", "a b c d"),
    ("a b c d e f g", "e f g a b c d"),
    ("w1 w2 w3 w4 w5 w6 w7 w8 w9 w10 w11 w12", "w1 w2 w3 w4 z w6 w7 w8 z w10 w11 w12"),
    ("", "a b c"),
    ("a a a a b", "a a a a a a"),
    ("public static void main ( string [ ] args ) {", "public static void main ( string args ) {"),
]


def read_csv_texts(path: pathlib.Path) -> list:
    with open(path, newline="", encoding="utf-8") as f:
        return [row["text"] for row in csv.DictReader(f)]


def bleu(reference: list, hypothesis: list) -> float:
    from nltk.translate.bleu_score import sentence_bleu
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(sentence_bleu([reference], hypothesis))


def perturb(tokens: list, rng: random.Random, strength: float, pool: list) -> list:
    out = []
    for tok in tokens:
        u = rng.random()
        if u < strength / 2:
            continue  # drop
        if u < strength:
            out.append(rng.choice(pool))  # replace
        else:
            out.append(tok)
    return out


TRICKY = [
    "don't can't I'm we'll they'd it's o'clock",
    "You're right, he's gone; she'd've said 'tis and 'twas, cannot, gonna wanna gimme lemme gotta.",
    "\"hello\" 'world' ``x''",
    "He said, \"stop.\" Then 'quoted' text and ''double single'' quotes.",
    "wait... what?! (yes) [no] {maybe} <tag>",
    "visit https://example.com/path?a=1&b=2#frag or mail me at john.doe@example.org!",
    "for (int i = 0; i < n; ++i) { x[i] = y; }",
    "a->b, c::d, e=>f",
    "3.14 1,000 $5 50% 10:30",
    "some text<|endoftext|>more text <|endoftext|> end",
    "line one\nline two\tafter tab\r\n  indented",
    "well -- maybe - or not---really",
    "the end.",
    "café naïve – “smart quotes” ‘single’ «guillemets» — em dash",
    "Mr. Smith went to Washington. He arrived at 5 p.m. on Jan. 3rd.",
    "hash #tag, at @user & co; star * and semicolon;",
    "trailing colon: and comma, then 12:00 and 1,5",
    "",
]


def nltk_fixtures(out: pathlib.Path, shared: pathlib.Path) -> None:
    import nltk
    from nltk.tokenize import NLTKWordTokenizer
    tok = NLTKWordTokenizer()
    csv_path = shared / CSV_REL
    texts = read_csv_texts(csv_path) if csv_path.is_file() else []
    if not texts:
        print(f"note: {csv_path} not found; BLEU/tokenize cases are synthetic only")

    cases = [{"reference": r.split(), "hypothesis": h.split()} for r, h in SYNTHETIC]
    rng = random.Random(7)
    tokenised = [tok.tokenize(t.lower()) for t in texts]
    pool = [w for ts in tokenised[:40] for w in ts]
    strengths = [0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    for k, ts in enumerate(tokenised[:20]):
        ref = ts[-40:]
        hyp = perturb(ref, rng, strengths[k % len(strengths)], pool)
        if k % 5 == 4:
            hyp = hyp + ref[:rng.randint(1, 8)]  # longer than the reference
        cases.append({"reference": ref, "hypothesis": hyp})
    for c in cases:
        c["bleu"] = bleu(c["reference"], c["hypothesis"])

    tok_cases = [{"text": t, "tokens": tok.tokenize(t.lower())} for t in texts[:30] + TRICKY]
    with open(out / "bleu.json", "w", encoding="utf-8") as f:
        json.dump({"bleu": cases, "tokenize": tok_cases}, f, ensure_ascii=False, indent=1)
    print(f"nltk {nltk.__version__}: {len(cases)} BLEU cases ({len(cases) - len(SYNTHETIC)} from csv), "
          f"{len(tok_cases)} tokenize cases")
    print("bleu " + " ".join(f"{c['bleu']:.4g}" for c in cases))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=pathlib.Path)
    default_shared = os.environ.get("LETHE_SHARED_DATA",
                                    str(pathlib.Path(__file__).resolve().parents[2].parent / "shared" / "data"))
    ap.add_argument("--shared-data", type=pathlib.Path, default=pathlib.Path(default_shared))
    args = ap.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    model_fixtures(args.out)
    nltk_fixtures(args.out, args.shared_data)


if __name__ == "__main__":
    main()
