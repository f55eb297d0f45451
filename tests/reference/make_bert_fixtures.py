#!/usr/bin/env python3
"""Writes the oracle for lethe's BERT pieces: the BERT WordPiece tokenizer (uncased), a tiny random HF BertModel,
BERTScore (bert_score 0.3.13 semantics) and mean-pooled sentence embeddings.

Contents:
  DIR/bert/                 a tiny random BERT as an HF folder:
      vocab.txt             WordPiece vocabulary (2000 entries, one per line, id = line number; [PAD] 0, [UNK] 1,
                            [CLS] 2, [SEP] 3, [MASK] 4, then the 500-char alphabet by code point, the "##c" pieces,
                            the merges), trained offline on the `text` column of icu/exp/exp*/lm_extraction_128_*.csv,
                            the first 200 rows of icu/validation_data/wikitext.csv (if present) and three copies of
                            the strings in VOCAB_SEED (so that accented, Greek, Cyrillic and CJK pieces are in the
                            vocab; the UNSEEN strings -- emoji, Hangul, kana, symbols -- stay out and map to [UNK]).
                            Settings of tokenizers.BertWordPieceTokenizer(lowercase, strip_accents None, clean_text,
                            handle_chinese_chars).train_from_iterator(vocab_size 2000, min_frequency 2,
                            limit_alphabet 500, "##"), but trained by train_vocab, a deterministic re-implementation
                            of that trainer (BertNormalizer + BertPreTokenizer of the library, then BPE merges):
                            the library's trainer breaks count ties in hash-map order, so its vocab changes from run
                            to run (6 runs: 2 different token sets, 6 different orders). The summary prints the
                            overlap with one library-trained vocab (about 1950 of 2000 tokens).
      tokenizer.json, tokenizer_config.json
                            transformers 5.x BertTokenizer (= BertTokenizerFast, tokenizers backend) built from that
                            vocab with do_lower_case true, strip_accents null, tokenize_chinese_chars true,
                            model_max_length 512. (transformers 5 BertTokenizer takes `vocab=`; `vocab_file=` is
                            silently ignored and gives a 5-token vocab, so the vocab is passed as a dict.)
      config.json, model.safetensors
                            BertConfig(hidden 32, 4 layers, 4 heads, intermediate 64, 512 positions, type vocab 2,
                            gelu (erf), layer_norm_eps 1e-12, dropout 0, initializer_range 0.1), torch.manual_seed(0).
                            After HF's init every LayerNorm weight is set to 1 + 0.1 N(0,1), every LayerNorm bias and
                            every Linear bias to 0.05 N(0,1) (HF inits them to 1 / 0, which would hide swapped or
                            missing parameters). Keys have no prefix: embeddings.word_embeddings.weight,
                            encoder.layer.{i}.attention.self.query.weight, ..., pooler.dense.weight.
  DIR/bert_expected.json
      "wordpiece": [{"text", "ids", "tokens"[, "ids_legacy"]}]: ids = BertTokenizer.encode(text,
                            add_special_tokens=True) of the saved folder (the tokenizer bert_score and the embedding
                            oracle use); tokens = its id -> token strings; "ids_legacy" only where the pure-Python
                            BertTokenizerLegacy (BasicTokenizer + WordpieceTokenizer, same vocab.txt) gives other ids.
      "bertscore": {"num_layers": 3, "batch_size": 4, "idf": false, "cands", "refs", "P", "R", "F",
                    "P_unpadded", "R_unpadded", "F_unpadded"}
                            P/R/F = bert_score.score(cands, refs, model_type=DIR/bert, num_layers=3, idf=False,
                            rescale_with_baseline=False, batch_size=4, lang=None, device="cpu") -- bert_score loads
                            the local folder directly (AutoTokenizer / AutoModel.from_pretrained on the path). One
                            shim: transformers 5's BertTokenizer lost build_inputs_with_special_tokens, which
                            bert_score's sent_encode calls for strings that are empty after strip(); the transformers
                            4 definition ([CLS] + ids + [SEP]) is put back on the class before calling it. The
                            script re-implements the computation and asserts agreement (1e-5). *_unpadded: the same
                            greedy matching done per pair alone, i.e. without bert_score's quirk that a padded
                            position (cosine forced to 0) wins the max when every real cosine is negative; pairs
                            22-24 are chosen (quirk_pair) so that the quirk shows: 22 and 24 are the same pair, 22
                            in a batch with longer references (P != P_unpadded), 24 alone (P == P_unpadded); 23 is
                            22 swapped (R != R_unpadded).
      "embed_texts": [str]  texts for the sentence-embedding oracle
  DIR/bert_expected.safetensors
      embeddings  float32 [len(embed_texts), 32]: tokenizer(embed_texts, padding=True, truncation=True,
                  max_length=256) -> BertModel(**enc).last_hidden_state -> masked mean over tokens -> L2-normalised
      layer3      float32 [1, n, 32]: hidden_states[3] (output of encoder layer 3; [0] is the embedding output) for
                  embed_texts[0] alone, no padding
      layer3_ids  int64 [1, n]: its input ids

Usage: make_bert_fixtures.py --out DIR [--shared-data DIR]
"""
import argparse
import csv
import heapq
import json
import os
import pathlib
import random
import sys
import time
from collections import Counter

import torch
from safetensors import safe_open
from safetensors.torch import save_file

HIDDEN = 32
NUM_LAYERS_BS = 3
BATCH_BS = 4
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

LONG_WORD = "pneumonoultramicroscopicsilicovolcanoconiosis" * 3  # 135 chars > 100 -> [UNK]
WORD_100 = ("abcdefghij" * 10)  # exactly 100 chars: not [UNK] by the length rule

# Tricky strings; these are also added (x3) to the vocabulary training texts.
VOCAB_SEED = [
    "café naïve Ångström Œuvre ŁÓDŹ façade résumé",
    "Crème Brûlée à la carte, São Paulo, Zürich, Kraków, Ærøskøbing, Øresund",
    "中文字符 mixed with English 和中文字符, 我们的中文",
    "日本語の文字 kanji 漢字",
    "wait... what?!?! (yes) [no] {maybe} <tag> --- *** !!! ??? ;;; ::: ~~~ ^^^ ``` $$$ ###",
    "null\x00byte bell\x07char tab\there new\nline cr\rreturn vt\x0bff\x0cnel\x85end",
    "zero\u200bwidth nb\u00a0sp thin\u2009space ideographic\u3000space narrow\u202fnbsp",
    "soft\u00adhyphen bom\ufeffmark rtl\u200fmark replacement\ufffdchar",
    "<|endoftext|>",
    "some text<|endoftext|>more text <|endoftext|> end",
    "3.14159 1,000,000 $5.99 50% 10:30pm 2nd 1e-10 0x1F 007",
    "visit https://example.com/path?a=1&b=2#frag or mail john.doe@example.org!",
    "def f(x):\n    return x**2 + 1  # comment\nint main() { return 0; } // done",
    "“smart quotes” and ‘single’ ones, «guillemets», „german“",
    "em dash — en dash – ellipsis … bullet • middle·dot",
    "Straße groß Fußgängerübergänge weiß",
    "Ελληνικά: ΟΔΥΣΣΕΥΣ οδυσσεύς σοφός Άλφα ΣΟΦΟΣ λόγος",
    "Привет, мир! Ёлка и йогурт, ЩУКА",
    "e\u0301cole école E\u0301COLE",
    "İstanbul ıi KELVIN \u212a ANGSTROM \u212b OHM \u2126",
    "ＡＢＣ１２３！ fullwidth",
    "rock'n'roll don't o'clock y'all",
    "ABC123def GHI-jkl_mno PQR.stu",
]

# Tricky strings NOT used for vocabulary training (their characters stay out of the vocab).
UNSEEN = [
    "emoji 😀🎉 👍🏽 family 👨\u200d👩\u200d👧 flags 🇩🇪",
    "한국어 텍스트 and ひらがな カタカナ",
    "x² ≤ y½ ∑ ∞ ± × ÷ → ©®™ °C",
    "line\u2028sep para\u2029sep",
    "ab\U0002B820cd ext\U0002B81Fb ext\U0002B920c",  # CJK ranges differ: Python 0x2B820-, Rust 0x2B920-
    "unassigned\u0378char x\u0378",  # Cn: removed by the Python BasicTokenizer, kept by the Rust normalizer
    "[CLS] [SEP] [MASK] [PAD] [UNK] inline[SEP]tokens and lowercase [cls] [sep] [ UNK ]",
    "the word " + LONG_WORD + " is long",
    WORD_100,
    WORD_100 + "a",
    "hello",
    "HELLO World",
    "",
    "     ",
    "\t\n \r ",
    "\x00\x07",
    "\u200b",
    "a",
    ".",
    "...",
]


def read_texts(path: pathlib.Path, limit: int = None) -> list:
    with open(path, newline="", encoding="utf-8") as f:
        rows = [row["text"] for row in csv.DictReader(f)]
    return rows[:limit] if limit is not None else rows


def load_corpus(shared: pathlib.Path) -> tuple:
    files = sorted((shared / "icu" / "exp").glob("exp*/lm_extraction_128_*.csv"))
    if not files:
        sys.exit(f"no icu/exp/exp*/lm_extraction_128_*.csv under {shared}")
    csv_texts = [t for p in files for t in read_texts(p)]
    wiki = shared / "icu" / "validation_data" / "wikitext.csv"
    wiki_texts = read_texts(wiki, 200) if wiki.is_file() else []
    return csv_texts, wiki_texts, files


def train_vocab(texts: list, vocab_size: int = 2000, min_frequency: int = 2, limit_alphabet: int = 500,
                prefix: str = "##") -> list:
    """tokenizers' WordPieceTrainer (a BpeTrainer with continuing-subword prefix "##"), re-done deterministically.

    Same steps as tokenizers 0.23: words = BertPreTokenizer pieces of the BertNormalizer(lowercase, strip_accents
    None -> stripped, clean_text, chinese chars) text; alphabet = the `limit_alphabet` most frequent characters
    (weighted by word count), ordered by code point, after the special tokens; a non-initial character is "##c"
    (characters outside the alphabet are dropped from the word); then repeatedly merge the most frequent adjacent
    pair (a, b) into a + b-without-"##" (an already known string keeps its id) while count >= min_frequency and the
    vocab is smaller than vocab_size. Ties go to the pair with the smaller ids, as in tokenizers, but here the
    "##c" ids are in code-point order rather than hash-map order, so the result is the same on every run."""
    from tokenizers import normalizers, pre_tokenizers
    norm = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True)
    pre = pre_tokenizers.BertPreTokenizer()
    wc = Counter()
    for t in texts:
        wc.update(w for w, _ in pre.pre_tokenize_str(norm.normalize_str(t)))
    cc = Counter()
    for w, c in wc.items():
        for ch in w:
            cc[ch] += c
    vocab = list(SPECIALS) + sorted(sorted(cc, key=lambda ch: (-cc[ch], ch))[:limit_alphabet])
    index = {t: i for i, t in enumerate(vocab)}
    words, cont = [], set()
    for w in sorted(wc):
        syms = [ch if k == 0 else prefix + ch for k, ch in enumerate(w) if ch in index]
        cont.update(ch for k, ch in enumerate(w) if k > 0 and ch in index)
        words.append([syms, wc[w]])
    for ch in sorted(cont):
        index[prefix + ch] = len(vocab)
        vocab.append(prefix + ch)

    pairs, where = Counter(), {}

    def count(i, sign):
        syms, c = words[i]
        for pair in zip(syms, syms[1:]):
            pairs[pair] += sign * c
            if sign > 0:
                where.setdefault(pair, set()).add(i)

    for i in range(len(words)):
        count(i, 1)
    heap = [(-c, index[a], index[b], (a, b)) for (a, b), c in pairs.items()]
    heapq.heapify(heap)
    while len(vocab) < vocab_size and heap:
        negc, _, _, (a, b) = heapq.heappop(heap)
        if pairs.get((a, b), 0) != -negc:
            continue  # stale entry
        if -negc < min_frequency:
            break
        new = a + (b[len(prefix):] if b.startswith(prefix) else b)
        if new not in index:
            index[new] = len(vocab)
            vocab.append(new)
        touched = set()
        for i in sorted(where.pop((a, b), ())):
            syms = words[i][0]
            count(i, -1)
            out, k = [], 0
            while k < len(syms):
                if k + 1 < len(syms) and syms[k] == a and syms[k + 1] == b:
                    out.append(new)
                    k += 2
                else:
                    out.append(syms[k])
                    k += 1
            words[i][0] = out
            count(i, 1)
            touched.update(zip(out, out[1:]))
        for q in touched:
            if pairs.get(q, 0) > 0:
                heapq.heappush(heap, (-pairs[q], index[q[0]], index[q[1]], q))
    assert len(set(vocab)) == len(vocab)
    return vocab


def library_vocab(texts: list) -> set:
    """One run of the library trainer as asked for originally; only compared with train_vocab (its ties are
    broken in hash-map order, so two runs can give different vocabularies)."""
    from tokenizers import BertWordPieceTokenizer
    tk = BertWordPieceTokenizer(lowercase=True, strip_accents=None, clean_text=True, handle_chinese_chars=True)
    tk.train_from_iterator(texts, vocab_size=2000, min_frequency=2, special_tokens=SPECIALS, limit_alphabet=500,
                           wordpieces_prefix="##", show_progress=False)
    return set(tk.get_vocab())


def write_vocab(vocab: list, bert_dir: pathlib.Path) -> dict:
    (bert_dir / "vocab.txt").write_text("".join(t + "\n" for t in vocab), encoding="utf-8")
    lines = (bert_dir / "vocab.txt").read_text(encoding="utf-8").split("\n")[:-1]
    assert lines == vocab and lines[:5] == SPECIALS
    return {t: i for i, t in enumerate(lines)}


def build_tokenizer(vocab: dict, bert_dir: pathlib.Path):
    from tokenizers import BertWordPieceTokenizer
    from transformers import AutoTokenizer, BertTokenizer
    from transformers.models.bert.tokenization_bert_legacy import BertTokenizerLegacy
    tok = BertTokenizer(vocab=dict(vocab), do_lower_case=True, model_max_length=512)
    tok.save_pretrained(str(bert_dir))
    loaded = AutoTokenizer.from_pretrained(str(bert_dir), use_fast=False)  # what bert_score does
    assert type(loaded).__name__ == "BertTokenizer", type(loaded)
    assert len(loaded) == len(vocab) and loaded.get_vocab() == vocab, (len(loaded), len(vocab))
    assert loaded.model_max_length == 512
    legacy = BertTokenizerLegacy(vocab_file=str(bert_dir / "vocab.txt"), do_lower_case=True)
    assert len(legacy) == len(vocab)
    probe = "The Quick brown fox, café naïve! 中文"
    ids = loaded.encode(probe)
    direct = BertWordPieceTokenizer(str(bert_dir / "vocab.txt"), lowercase=True).encode(probe).ids
    assert ids == direct == legacy.encode(probe), (ids, direct)
    assert ids[0] == 2 and ids[-1] == 3 and 1 not in ids[1:-1] and len(ids) > 8, ids
    return loaded, legacy


def build_model(vocab_size: int, bert_dir: pathlib.Path):
    from transformers import BertConfig, BertModel
    cfg = BertConfig(vocab_size=vocab_size, hidden_size=HIDDEN, num_hidden_layers=4, num_attention_heads=4,
                     intermediate_size=64, max_position_embeddings=512, hidden_dropout_prob=0.0,
                     attention_probs_dropout_prob=0.0, type_vocab_size=2, initializer_range=0.1)
    torch.manual_seed(0)
    model = BertModel(cfg)
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, torch.nn.LayerNorm):
                mod.weight.copy_(1.0 + 0.1 * torch.randn_like(mod.weight))
                mod.bias.copy_(0.05 * torch.randn_like(mod.bias))
            elif isinstance(mod, torch.nn.Linear) and mod.bias is not None:
                mod.bias.copy_(0.05 * torch.randn_like(mod.bias))
    model.eval()
    model.save_pretrained(str(bert_dir), safe_serialization=True)
    model.config._attn_implementation = "eager"  # for the oracle itself; bert_score reloads with the default
    return model


def wordpiece_cases(csv_texts: list, tok, legacy) -> tuple:
    texts = []
    for k in range(30):
        t = csv_texts[k * 17 % len(csv_texts)]
        texts.append(t[:300] if k % 3 == 1 else t)
    texts += VOCAB_SEED + UNSEEN
    cases, n_diff = [], 0
    for t in texts:
        ids = tok.encode(t, add_special_tokens=True)
        while len(ids) >= 400:  # keep every case under 400 tokens
            t = t[: len(t) * 3 // 4]
            ids = tok.encode(t, add_special_tokens=True)
        case = {"text": t, "ids": ids, "tokens": tok.convert_ids_to_tokens(ids)}
        ids_legacy = legacy.encode(t, add_special_tokens=True)
        if ids_legacy != ids:
            case["ids_legacy"] = ids_legacy
            n_diff += 1
        cases.append(case)
    return cases, n_diff


def perturb(words: list, rng: random.Random, strength: float, pool: list) -> list:
    out = []
    for w in words:
        u = rng.random()
        if u < strength / 2:
            continue
        out.append(rng.choice(pool) if u < strength else w)
    return out


def suffix(text: str, n: int = 200) -> str:
    s = text[-n:]
    cut = s.find(" ")
    return s[cut + 1:] if 0 <= cut < 40 else s


def quirk_pair(model, tok, csv_texts: list) -> tuple:
    """The (csv snippet, short text) pair with the most negative min over the snippet's real tokens of the max
    cosine to any token of the short text, searched over csv_texts[:300] (last 200 chars) x SHORT."""
    short = {r: torch.nn.functional.normalize(token_embeddings(model, bs_encode(tok, r)), dim=-1) for r in SHORT}
    best = (float("inf"), None, None)
    for t in csv_texts[:300]:
        c = t[-200:]
        h = torch.nn.functional.normalize(token_embeddings(model, bs_encode(tok, c))[1:-1], dim=-1)
        for r, e in short.items():
            v = float((h @ e.T).max(dim=1)[0].min())
            if v < best[0]:
                best = (v, c, r)
    return best


SHORT = ["world", "...", "a", "hello", "!!!"]


def bertscore_pairs(csv_texts: list, quirk_c: str, quirk_r: str) -> tuple:
    rng = random.Random(11)
    snip = [suffix(csv_texts[5 + 23 * k]) for k in range(14)]
    pool = [w for s in snip for w in s.split()]
    pp = lambda s, st: " ".join(perturb(s.split(), rng, st, pool))
    pairs = [
        (snip[0], snip[0]),                                   # identical
        (pp(snip[1], 0.1), snip[1]),                          # light perturbation
        ("", snip[2]),                                        # empty candidate
        ("the cat sat on the mat", "a cat was sitting on the mat"),
        (pp(snip[3], 0.4), snip[3]),                          # heavy perturbation
        (snip[4][: len(snip[4]) // 2], snip[4]),              # truncated candidate
        (snip[5], ""),                                        # empty reference
        ("hello", "world"),
        (snip[6] + " " + snip[7][:80], snip[6]),              # longer candidate
        (snip[8], snip[9]),                                   # unrelated
        ("   \n", snip[10]),                                  # whitespace only -> "" after strip
        ("!!!", "???"),
        (snip[11] + "<|endoftext|>" + snip[12][:60], snip[11]),
        (snip[12], "<|endoftext|> " + snip[12]),
        (snip[13].upper(), snip[13]),                         # same after lower-casing
        ("hello [SEP] world [CLS] again", "hello world again"),
        ("café naïve façade", "cafe naive facade"),           # same after accent stripping
        ("", ""),                                             # both empty
        ("\x00\x07", "some reference text"),                  # only removed chars -> [CLS][SEP]
        (snip[1], pp(snip[1], 0.1)),                          # swapped direction of pair 2
        (snip[0], snip[0]),                                   # duplicate pair
        ("x² ≤ y½ 😀", "unknown symbols"),                     # candidate of [UNK]s
        # The padding quirk (see quirk_pair): some tokens of `quirk_c` have a negative cosine to every token of
        # `quirk_r` ([CLS] / [SEP] included). Inside a batch with a longer reference (candidate) a padded position,
        # whose masked cosine is 0, then wins the max for P (R); alone in its batch it does not.
        (quirk_c, quirk_r),                                   # pair 22, batch of pairs 20-23: P affected
        (quirk_r, quirk_c),                                   # pair 23: R affected
        (quirk_c, quirk_r),                                   # pair 24 = pair 22, alone in the last batch
    ]
    assert len(pairs) % BATCH_BS == 1
    return [c for c, _ in pairs], [r for _, r in pairs]


# ------------------------------------------------------------------------------ bert_score re-implementation

def build_inputs_with_special_tokens(self, token_ids_0: list, token_ids_1: list = None) -> list:
    """transformers 4.x BertTokenizer(Fast).build_inputs_with_special_tokens. transformers 5's BertTokenizer no
    longer has it, and bert_score's sent_encode calls it for every sentence that is empty after strip()
    (AttributeError otherwise); run_bert_score puts this back on the class."""
    out = [self.cls_token_id] + list(token_ids_0) + [self.sep_token_id]
    return out + list(token_ids_1) + [self.sep_token_id] if token_ids_1 is not None else out


def bs_encode(tok, sent: str) -> list:
    """bert_score.utils.sent_encode for a BERT tokenizer under transformers >= 4."""
    sent = sent.strip()
    if sent == "":
        return build_inputs_with_special_tokens(tok, [])
    return tok.encode(sent, add_special_tokens=True, max_length=tok.model_max_length, truncation=True)


def token_embeddings(model, ids: list) -> torch.Tensor:
    with torch.no_grad():
        out = model(torch.tensor([ids]), output_hidden_states=True)
    return out.hidden_states[NUM_LAYERS_BS][0]


def greedy(ref_embs, ref_ws, hyp_embs, hyp_ws, padded: bool) -> tuple:
    """greedy_cos_idf for one batch of pairs (padded=True) or each pair alone (padded=False)."""
    if not padded:
        outs = [greedy([r], [rw], [h], [hw], True) for r, rw, h, hw in zip(ref_embs, ref_ws, hyp_embs, hyp_ws)]
        return tuple(torch.cat([o[k] for o in outs]) for k in range(3))

    def pad(embs, ws):
        n = max(e.shape[0] for e in embs)
        e = torch.full((len(embs), n, HIDDEN), 2.0)
        w = torch.zeros(len(embs), n)
        m = torch.zeros(len(embs), n)
        for i, (x, y) in enumerate(zip(embs, ws)):
            e[i, : x.shape[0]], w[i, : x.shape[0]], m[i, : x.shape[0]] = x, y, 1.0
        return e / e.norm(dim=-1, keepdim=True), w, m

    re, rw, rm = pad(ref_embs, ref_ws)
    he, hw, hm = pad(hyp_embs, hyp_ws)
    sim = torch.bmm(he, re.transpose(1, 2)) * (hm.unsqueeze(2) * rm.unsqueeze(1))
    p = (sim.max(dim=2)[0] * hw / hw.sum(1, keepdim=True)).sum(1)
    r = (sim.max(dim=1)[0] * rw / rw.sum(1, keepdim=True)).sum(1)
    f = 2 * p * r / (p + r)
    empty = hm.sum(1).eq(2) | rm.sum(1).eq(2)
    p, r = p.masked_fill(empty, 0.0), r.masked_fill(empty, 0.0)
    return p, r, f.masked_fill(torch.isnan(f), 0.0)


def bertscore_reference(model, tok, cands: list, refs: list, padded: bool) -> tuple:
    cache = {}

    def stats(s):
        if s not in cache:
            ids = bs_encode(tok, s)
            w = [0.0 if i in (tok.sep_token_id, tok.cls_token_id) else 1.0 for i in ids]
            cache[s] = (token_embeddings(model, ids), torch.tensor(w))
        return cache[s]

    outs = []
    for b in range(0, len(refs), BATCH_BS):
        rs = [stats(s) for s in refs[b: b + BATCH_BS]]
        hs = [stats(s) for s in cands[b: b + BATCH_BS]]
        outs.append(greedy([x[0] for x in rs], [x[1] for x in rs], [x[0] for x in hs], [x[1] for x in hs], padded))
    return tuple(torch.cat([o[k] for o in outs]) for k in range(3))


def run_bert_score(bert_dir: pathlib.Path, cands: list, refs: list) -> tuple:
    import contextlib
    import io
    import bert_score
    from transformers import BertTokenizer
    shimmed = not any("build_inputs_with_special_tokens" in vars(c) for c in BertTokenizer.__mro__)
    if shimmed:
        BertTokenizer.build_inputs_with_special_tokens = build_inputs_with_special_tokens
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        p, r, f = bert_score.score(cands, refs, model_type=str(bert_dir), num_layers=NUM_LAYERS_BS, idf=False,
                                   rescale_with_baseline=False, batch_size=BATCH_BS, lang=None, device="cpu")
    warnings = sorted({ln for ln in err.getvalue().splitlines() if ln.startswith("Warning: Empty")})
    return p, r, f, warnings, shimmed


# ------------------------------------------------------------------------------ embeddings

def embed_texts(csv_texts: list) -> list:
    return [
        "The quick brown fox jumps over the lazy dog.",
        csv_texts[1],        # several of these exceed 256 tokens -> truncated
        csv_texts[40],
        csv_texts[200][:300],
        csv_texts[333],
        csv_texts[500][:120],
        "",
        "café naïve façade",
        "中文字符 mixed with English",
        "<|endoftext|>",
        "hello [SEP] world",
        "the word " + LONG_WORD + " is long",
        "Привет, мир!",
        "a",
    ]


def embeddings(model, tok, texts: list) -> tuple:
    enc = tok(texts, padding=True, truncation=True, max_length=256, return_tensors="pt")
    with torch.no_grad():
        h = model(**enc).last_hidden_state
    mask = enc["attention_mask"].unsqueeze(-1).float()
    mean = (h * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    emb = torch.nn.functional.normalize(mean, p=2, dim=1)
    ids = torch.tensor([tok.encode(texts[0])], dtype=torch.int64)
    with torch.no_grad():
        layer3 = model(ids, output_hidden_states=True).hidden_states[3]
    return emb.float().contiguous(), layer3.float().contiguous(), ids, enc["attention_mask"].sum(1).tolist()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=pathlib.Path)
    default_shared = os.environ.get("LETHE_SHARED_DATA",
                                    str(pathlib.Path(__file__).resolve().parents[2].parent / "shared" / "data"))
    ap.add_argument("--shared-data", type=pathlib.Path, default=pathlib.Path(default_shared))
    args = ap.parse_args()
    t0 = time.time()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    bert_dir = args.out / "bert"
    bert_dir.mkdir(parents=True, exist_ok=True)

    csv_texts, wiki_texts, files = load_corpus(args.shared_data)
    train_texts = csv_texts + wiki_texts + VOCAB_SEED * 3
    vocab = write_vocab(train_vocab(train_texts), bert_dir)
    lib = library_vocab(train_texts)
    tok, legacy = build_tokenizer(vocab, bert_dir)
    model = build_model(len(vocab), bert_dir)
    with safe_open(str(bert_dir / "model.safetensors"), "pt") as f:
        names = sorted(f.keys())

    wp, n_diff = wordpiece_cases(csv_texts, tok, legacy)

    quirk_cos, quirk_c, quirk_r = quirk_pair(model, tok, csv_texts)
    cands, refs = bertscore_pairs(csv_texts, quirk_c, quirk_r)
    p, r, f, warnings, shimmed = run_bert_score(bert_dir, cands, refs)
    mp, mr, mf = bertscore_reference(model, tok, cands, refs, padded=True)
    up, ur, uf = bertscore_reference(model, tok, cands, refs, padded=False)
    dev = max(float((a - b).abs().max()) for a, b in ((p, mp), (r, mr), (f, mf)))
    assert dev < 1e-5, f"re-implementation differs from bert_score by {dev}"
    quirk = max(float((a - b).abs().max()) for a, b in ((p, up), (r, ur), (f, uf)))
    if quirk_cos < 0:
        assert p[22] > up[22] and r[23] > ur[23] and abs(float(p[24] - up[24])) < 1e-6, "padding quirk not shown"

    texts = embed_texts(csv_texts)
    emb, layer3, layer3_ids, lens = embeddings(model, tok, texts)
    # bert_score's truncated model output must be hidden_states[3] of the full model
    assert torch.allclose(token_embeddings(model, layer3_ids[0].tolist()), layer3[0], atol=1e-6)

    expected = {
        "wordpiece": wp,
        "bertscore": {"num_layers": NUM_LAYERS_BS, "batch_size": BATCH_BS, "idf": False, "cands": cands,
                      "refs": refs, "P": p.tolist(), "R": r.tolist(), "F": f.tolist(), "P_unpadded": up.tolist(),
                      "R_unpadded": ur.tolist(), "F_unpadded": uf.tolist()},
        "embed_texts": texts,
    }
    with open(args.out / "bert_expected.json", "w", encoding="utf-8") as fh:
        json.dump(expected, fh, ensure_ascii=False, indent=1)
    save_file({"embeddings": emb, "layer3": layer3, "layer3_ids": layer3_ids.contiguous()},
              str(args.out / "bert_expected.safetensors"))

    import bert_score
    import transformers
    print(f"corpus: {len(csv_texts)} csv texts from {len(files)} files + {len(wiki_texts)} wikitext rows")
    print(f"vocab {len(vocab)}, {len(lib & set(vocab))} of them also in a tokenizers-library-trained vocab of "
          f"{len(lib)} (tokenizer {type(tok).__name__}, len {len(tok)}, model_max_length "
          f"{tok.model_max_length}); transformers {transformers.__version__}, bert_score package "
          f"__version__ {bert_score.__version__}")
    prefix = "no prefix" if not any(n.startswith("bert.") for n in names) else "'bert.' prefix"
    print(f"model.safetensors: {len(names)} tensors, {prefix}:")
    print("  " + " ".join(names))
    print(f"wordpiece: {len(wp)} cases, {n_diff} where BertTokenizerLegacy differs; "
          f"longest {max(len(c['ids']) for c in wp)} ids")
    for c in wp:
        if "ids_legacy" in c:
            print(f"  legacy differs: {c['text'][:60]!r}")
    fmt = lambda x: " ".join(f"{v:.4f}" for v in x.tolist())
    print(f"bertscore ({len(cands)} pairs, bert_score on the local folder directly; re-implementation max "
          f"|diff| {dev:.2e}; padding-quirk max |diff| {quirk:.2e}):")
    print(f"  P {fmt(p)}\n  R {fmt(r)}\n  F {fmt(f)}")
    print(f"  quirk pairs 22-24: {quirk_r!r} vs a csv snippet, most negative best cosine {quirk_cos:.4f}; "
          f"P[22] {float(p[22]):.6f} vs unpadded {float(up[22]):.6f}, R[23] {float(r[23]):.6f} vs unpadded "
          f"{float(ur[23]):.6f}, P[24] {float(p[24]):.6f}")
    for w in warnings:
        print(f"  bert_score said: {w}")
    if shimmed:
        print("  (BertTokenizer.build_inputs_with_special_tokens was missing; the transformers 4 version was put back)")
    print(f"embeddings {tuple(emb.shape)}, token counts {lens}; layer3 {tuple(layer3.shape)}")
    print(f"done in {time.time() - t0:.1f} s")


if __name__ == "__main__":
    main()
