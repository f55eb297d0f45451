#!/usr/bin/env python3
"""Importable transcription of ICU's downstream validation scoring (himalalps/ICU `valid.py` + `Datasets_valid.py`,
with Knowledge Unlearning's `utils.normalize_reply`), written from the description of those files; used as the oracle
for lethe's C++ utility evaluation. Everything here works on an HF `GPTNeoForCausalLM` (eval mode, fp32) and an HF GPT-2
tokenizer whose pad token is EOS (50256). `make_utility_fixtures.py` drives it; nothing runs on import.

Conventions (padding_length = prefix_length = suffix_length = `length` = 512 unless a parameter says otherwise):

  source ids    tokenizer(text, max_length=length, padding="max_length", truncation=True).input_ids with the trailing
                pad (= EOS) ids popped ("get_rid_of_pad"): the FIRST `length` tokens of the text. Real trailing EOS
                tokens are popped too, as in the reference.
  target ids    the same with add_special_tokens=False (GPT-2 adds nothing either way). Context and each choice are
                tokenised SEPARATELY, never jointly.
  decode        tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False) followed by
                `clean_up_tokenization` below. ICU ran transformers 4.x, whose GPT-2 decode applied that clean-up when
                clean_up_tokenization_spaces=True; transformers 5 silently ignores the flag for BPE tokenizers, so it
                is applied here by hand (" ." -> ".", " 's" -> "'s", ...).

  classification (MathQA, COPA, PubMedQA; also PIQA/ARC/WinoGrande/HellaSwag in ICU)
                per item and choice c: inp = (context_ids + choice_ids)[-length:][:-1], inplen = len(inp), right-padded
                with EOS to `length`, one forward without attention mask, log_softmax over the vocabulary; the choice's
                log-likelihood is the sum over rows inplen-contlen .. inplen-1 of the log-prob of the choice tokens.
                pred = argmax over choices (first index on ties, as torch.argmin of the negated sums).
  lambada       input = " ".join(text.split(" ")[:-1]), target = " " + text.split(" ")[-1]; the same rows, teacher
                forced; greedy = per-row argmax; correct = (greedy == target ids everywhere) or
                normalize_answer(decode(greedy).strip()) == normalize_answer(decode(target).strip()); f1 = SQuAD F1 of
                those two strings; ll = sum of target log-probs (ICU logs its negation as "loss").
  dialogue      prompt from turns[:-1] ("User 1: ...\\nUser 2: ...\\n" then "User 1:" / "User 2:" for whoever speaks
                next, every turn through normalize_reply), target = normalize_reply(turns[-1]). Source ids left-padded
                with EOS to `length`, attention_mask = (inputs != EOS), greedy model.generate(max_new_tokens=32,
                pad = eos = 50256). transformers 5.24 then uses position_ids = cumsum(mask) - 1 (0 on padded slots) and
                advances them by one per new token; the fixture script cross-checks this with a manual loop.
                text = decode(new tokens).split("\\nUser ")[0], f1 = SQuAD F1(text, decode(target ids)). ICU's logged
                dialogue loss is buggy (it scores only the last item of each batch) and is not transcribed.
  perplexity    ids = tokenizer("\\n\\n".join(texts)).input_ids (no truncation); windows ids[b:b+length] for
                b = 0, length, 2*length, ...; loss = model(window, labels=window).loss (mean CE of the window's len-1
                next-token predictions); ppl = exp(mean of the window losses). A final window of length 1 is SKIPPED:
                the reference would average a NaN loss there (no prediction to score).

Differences from the reference that do not change results beyond fp noise:
  * right padding: ICU's lambada pads with token 0 rather than EOS; without an attention mask a causal model's rows
    before inplen do not depend on the padding, so EOS is used everywhere.
  * batching: every (item, choice) sequence is scored independently; `batch_size` only groups forwards.
  * only the needed rows of the logits go through the LM head and log_softmax (log_softmax is per row), unless
    full_logits=True, which computes the full [B, length, V] tensor as the reference does. Log-likelihood sums are
    accumulated in float64.
Dataset readers take the first `limit` items in file order (after pandas dropna(), which ICU applies; it drops
nothing in the shared files).
"""
import json
import math
import re
import string
from collections import Counter

import torch
import torch.nn.functional as F

EOS = 50256
LENGTH = 512


# ------------------------------------------------------------------------------------------------ text helpers

def clean_up_tokenization(text: str) -> str:
    """transformers 4.x `PreTrainedTokenizerBase.clean_up_tokenization` (what clean_up_tokenization_spaces=True did)."""
    for old, new in ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                     (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")):
        text = text.replace(old, new)
    return text


def decode(tokenizer, ids) -> str:
    """decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=True) as transformers 4.x did it."""
    ids = [int(i) for i in ids]
    return clean_up_tokenization(tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False))


def get_rid_of_pad(ids: list, pad: int = EOS) -> list:
    ids = list(ids)
    while ids and (ids[-1] == -100 or ids[-1] == pad):
        ids.pop()
    return ids


def encode_source(tokenizer, text: str, length: int = LENGTH) -> list:
    enc = tokenizer(text, max_length=length, padding="max_length", truncation=True)
    return get_rid_of_pad(enc["input_ids"])


def encode_target(tokenizer, text: str, length: int = LENGTH) -> list:
    enc = tokenizer(text, max_length=length, add_special_tokens=False, padding="max_length", truncation=True)
    return get_rid_of_pad(enc["input_ids"])


def normalize_answer(s: str) -> str:
    """SQuAD normalisation: lower -> remove punctuation -> remove articles -> fix white space -> drop T5 sentinels."""
    text = s.lower()
    exclude = set(string.punctuation)
    text = "".join(ch for ch in text if ch not in exclude)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    text = " ".join(text.split())
    text = text.replace("<extra_id_0>", "").replace("<extra_id_1>", "")
    return text


def exact_match(prediction: str, ground_truth: str) -> int:
    return int(normalize_answer(prediction) == normalize_answer(ground_truth))


def f1_score(prediction: str, ground_truth: str) -> float:
    p = normalize_answer(prediction).split()
    g = normalize_answer(ground_truth).split()
    num_same = sum((Counter(p) & Counter(g)).values())
    if num_same == 0:
        return 0.0
    precision = num_same / len(p)
    recall = num_same / len(g)
    return 2 * precision * recall / (precision + recall)


def uppercase(s: str) -> str:
    return s[0].upper() + s[1:] if s else s


_SWITCH = [(" .", "."), (" ,", ","), (" ?", "?"), (" !", "!"), (" ' ", "'")]


def normalize_reply(text: str, version: int = 2) -> str:
    """ParlAI / KU normalize_reply. Note `tok in '?.!'` is a substring test, so an empty token also matches."""
    new_text = text.lower()
    for new, old in _SWITCH:
        new_text = new_text.replace(old, new).replace("  ", " ")
    tokens = new_text.split(" ")
    for i in range(len(tokens)):
        if i == 0:
            tokens[i] = uppercase(tokens[i])
        elif tokens[i] in ("i", "i'm", "i've", "i'll", "i'd"):
            tokens[i] = uppercase(tokens[i])
        elif tokens[i] in "?.!" and i < len(tokens) - 1:
            tokens[i + 1] = uppercase(tokens[i + 1])
    new_text = " ".join(tokens)
    new_text = " " + new_text + " "
    for a, b in _SWITCH:
        new_text = new_text.replace(a, b)
    new_text = new_text.strip()
    new_text = new_text.replace("  ", " ")
    if version > 1 and new_text and new_text[-1] not in "!.?)\"'":
        new_text += "."
    return new_text


def dialogue_prompt(turns: list) -> str:
    """ICU create_dialogue_prompt(turns) where `turns` is every turn but the last (must be non-empty)."""
    prompt = ""
    i = 0
    for i, turn in enumerate(turns):
        turn = normalize_reply(turn)
        prompt += f"User 1: {turn}\n" if i % 2 == 0 else f"User 2: {turn}\n"
    prompt += "User 1:" if i % 2 else "User 2:"
    return prompt


# ------------------------------------------------------------------------------------------------ dataset readers

def _jsonl(path) -> list:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _head(rows: list, limit) -> list:
    return rows if limit is None else rows[:limit]


def read_mathqa(path, limit=None) -> list:
    """downstream/mathqa_dev_first500.jsonl -> [{"context", "choices", "gold"}]; choices have NO leading space."""
    items = []
    for r in _head(_jsonl(path), limit):
        choices = [c[4:].rstrip(" ,") for c in re.findall(r"[abcd] \) .*?, |e \) .*?$", r["options"])]
        items.append({"context": r["Problem"], "choices": choices, "gold": "abcde".index(r["correct"])})
    return items


def read_copa(path, limit=None) -> list:
    """downstream/copa_validation_llmfoundry.jsonl (MosaicML layout) -> ICU's raw SuperGLUE inputs:
    premise = query with the trailing ", therefore" / ", because" replaced by "."; choice = " " + Capitalised."""
    items = []
    for r in _head(_jsonl(path), limit):
        q = r["query"]
        for conn in (", therefore", ", because"):
            if q.endswith(conn):
                q = q[: -len(conn)] + "."
                break
        else:
            raise ValueError(f"COPA query without connector: {q!r}")
        items.append({"context": q, "choices": [" " + c[0].upper() + c[1:] for c in r["choices"]],
                      "gold": int(r["gold"])})
    return items


def read_pubmedqa(path, limit=None) -> list:
    import pandas as pd
    df = pd.read_csv(path).dropna()
    items = []
    for _, r in _head(df, limit).iterrows():
        items.append({"context": f"Context: {r['abstract']}\nQuestion: {r['question']}\nAnswer:",
                      "choices": [" yes", " maybe", " no"],
                      "gold": ["yes", "maybe", "no"].index(r["final_decision"])})
    return items


def read_text_column(path, limit=None) -> list:
    """A CSV's `text` column (lambada.csv, pile.csv, wikitext.csv)."""
    import pandas as pd
    df = pd.read_csv(path).dropna()
    return [str(t) for t in _head(df, limit)["text"].tolist()]


def read_dialogues(path, limit=None) -> list:
    """A dialogue JSON in pandas column layout -> list of turn lists."""
    import pandas as pd
    df = pd.read_json(path).dropna()
    return [list(t) for t in _head(df, limit)["text"].tolist()]


def lambada_split(text: str) -> tuple:
    words = text.split(" ")
    return " ".join(words[:-1]), " " + words[-1]


# ------------------------------------------------------------------------------------------------ model helpers

def _span_log_probs(model, inputs: torch.Tensor, spans: list, full_logits: bool = False) -> list:
    """log_softmax rows [s, e) of each batch row; one forward without attention mask."""
    with torch.no_grad():
        if full_logits:
            lp = F.log_softmax(model(inputs).logits, dim=-1)
            return [lp[b, s:e] for b, (s, e) in enumerate(spans)]
        hidden = model.transformer(input_ids=inputs).last_hidden_state
        return [F.log_softmax(model.lm_head(hidden[b, s:e]), dim=-1) for b, (s, e) in enumerate(spans)]


def _score_pairs(model, pairs: list, batch_size: int, length: int, full_logits: bool) -> list:
    """pairs: [(context_ids, continuation_ids)] -> [(log-prob rows [contlen, V], continuation ids)]."""
    out = []
    for k in range(0, len(pairs), batch_size):
        chunk = pairs[k:k + batch_size]
        rows, spans = [], []
        for ctx, cont in chunk:
            assert len(ctx) > 0 and len(cont) > 0
            inp = (ctx + cont)[-length:][:-1]
            inplen = len(inp)
            rows.append(inp + [EOS] * (length - inplen))
            spans.append((inplen - len(cont), inplen))
        lps = _span_log_probs(model, torch.tensor(rows, dtype=torch.long), spans, full_logits)
        out.extend(zip(lps, [c for _, c in chunk]))
    return out


def _gather_sum(lp: torch.Tensor, cont: list) -> float:
    idx = torch.tensor(cont, dtype=torch.long)
    return float(lp[torch.arange(len(cont)), idx].double().sum())


def score_classification(model, tokenizer, items: list, batch_size: int = 8, length: int = LENGTH,
                         full_logits: bool = False) -> list:
    """items: [{"context", "choices", "gold"}] -> [{"ll": [per-choice sums], "gold", "pred"}]."""
    pairs, owner = [], []
    for n, it in enumerate(items):
        ctx = encode_source(tokenizer, it["context"], length)
        for c in it["choices"]:
            pairs.append((ctx, encode_target(tokenizer, c, length)))
            owner.append(n)
    scored = _score_pairs(model, pairs, batch_size, length, full_logits)
    lls = [[] for _ in items]
    for n, (lp, cont) in zip(owner, scored):
        lls[n].append(_gather_sum(lp, cont))
    results = []
    for it, ll in zip(items, lls):
        pred = max(range(len(ll)), key=lambda j: (ll[j], -j))  # first index on ties
        results.append({"ll": ll, "gold": int(it["gold"]), "pred": int(pred)})
    return results


def score_lambada(model, tokenizer, texts: list, batch_size: int = 8, length: int = LENGTH,
                  full_logits: bool = False) -> list:
    """texts: raw lambada lines -> [{"ll", "correct", "f1", "greedy"}]."""
    pairs = []
    for t in texts:
        inp, tgt = lambada_split(t)
        pairs.append((encode_source(tokenizer, inp, length), encode_target(tokenizer, tgt, length)))
    results = []
    for lp, cont in _score_pairs(model, pairs, batch_size, length, full_logits):
        greedy = lp.argmax(dim=-1).tolist()
        max_equal = greedy == cont
        predicted = decode(tokenizer, greedy).strip()
        ground_truth = decode(tokenizer, cont).strip()
        em = exact_match(predicted, ground_truth)
        results.append({"ll": _gather_sum(lp, cont), "correct": int(bool(max_equal) or em == 1),
                        "f1": float(f1_score(predicted, ground_truth)), "greedy": [int(g) for g in greedy]})
    return results


def generate_greedy(model, sources: list, length: int = LENGTH, max_new_tokens: int = 32) -> list:
    """sources: [ids] (each <= length) -> new token ids per source, EOS and everything after it removed."""
    inputs = torch.tensor([[EOS] * (length - len(s)) + list(s) for s in sources], dtype=torch.long)
    mask = inputs.ne(EOS).long()
    with torch.no_grad():
        out = model.generate(inputs, attention_mask=mask, max_new_tokens=max_new_tokens, pad_token_id=EOS,
                             eos_token_id=EOS, do_sample=False, num_beams=1)
    new = []
    for row in out[:, length:].tolist():
        new.append(row[:row.index(EOS)] if EOS in row else row)
    return new


def score_dialogue(model, tokenizer, dialogues: list, batch_size: int = 8, length: int = LENGTH,
                   max_new_tokens: int = 32) -> list:
    """dialogues: [turn list] -> [{"prompt", "target", "tokens", "text", "f1"}]."""
    prompts = [dialogue_prompt(d[:-1]) for d in dialogues]
    targets = [normalize_reply(d[-1]) for d in dialogues]
    sources = [encode_source(tokenizer, p, length) for p in prompts]
    results = []
    for k in range(0, len(dialogues), batch_size):
        gen = generate_greedy(model, sources[k:k + batch_size], length, max_new_tokens)
        for j, toks in enumerate(gen):
            n = k + j
            text = decode(tokenizer, toks).split("\nUser ")[0]
            target_text = decode(tokenizer, encode_target(tokenizer, targets[n], length))
            results.append({"prompt": prompts[n], "target": targets[n], "tokens": [int(t) for t in toks],
                            "text": text, "f1": float(f1_score(text, target_text))})
    return results


def perplexity(model, tokenizer, texts: list, window: int = LENGTH) -> dict:
    """-> {"window_losses": [...], "ppl": exp(mean)}; a trailing window of length 1 is skipped (NaN in ICU)."""
    ids = tokenizer("\n\n".join(texts))["input_ids"]
    losses = []
    with torch.no_grad():
        for begin in range(0, len(ids), window):
            end = min(begin + window, len(ids))
            chunk = ids[begin:end]
            if len(chunk) > 1:
                x = torch.tensor([chunk], dtype=torch.long)
                losses.append(float(model(x, labels=x).loss))
            if end == len(ids):
                break
    return {"window_losses": losses, "ppl": math.exp(sum(losses) / len(losses)) if losses else float("nan"),
            "n_tokens": len(ids)}
