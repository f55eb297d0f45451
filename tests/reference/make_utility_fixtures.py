#!/usr/bin/env python3
"""Writes the oracle for lethe's utility evaluation: ICU's downstream validation scoring (transcribed in
icu_valid_reference.py) and lm-evaluation-harness (HF backend) parity on PIQA / ARC-Easy / WinoGrande, all computed
with one tiny random GPT-Neo and the real GPT-2 tokenizer on the first N items of the shared data files.

Contents (N = --limit, default 24; "shared" = --shared-data):
  DIR/model/            tiny GPT-Neo (torch.manual_seed(0); vocab 50257, 2048 positions, hidden 64, 2 layers
                        [global, local], 4 heads, window 256, intermediate 256, initializer_range 0.1, dropouts 0,
                        bos = eos = 50256, eager attention), save_pretrained safetensors (config.json,
                        generation_config.json, model.safetensors) plus vocab.json (= shared
                        gpt2_tokenizer/encoder.json) and merges.txt (= shared gpt2_tokenizer/vocab.bpe). Load it with
                        GPT2TokenizerFast.from_pretrained(DIR/model) and set pad = eos.
  DIR/icu.json          {"limit": N, "dialogue_limit": n = min(N, 12),
     "mathqa" | "copa" | "pubmedqa": [{"ll": [per-choice log-likelihood sums], "gold": g, "pred": argmax}]  (N items)
     "lambada": [{"ll": target log-likelihood, "correct": 0|1, "f1": f, "greedy": [teacher-forced argmax ids]}]
     "wizard_of_wikipedia" | "empathetic_dialogues": [{"prompt": s, "target": normalize_reply(last turn),
                        "tokens": [greedy new ids, EOS and after removed], "text": decoded text before "\\nUser ",
                        "f1": f}]  (n dialogues)
     "pile" | "wikitext": {"window_losses": [...], "ppl": exp(mean), "n_tokens": T}  (first N texts, "\\n\\n"-joined,
                        512-token windows)
     "long": {"classification": [{"context", "choices", "gold", "ll", "pred"}] (2 wikitext contexts > 512 tokens),
              "dialogue": [{"turns", "prompt", "target", "tokens", "text", "f1"}] (2 prompts > 512 tokens)}
     "normalize": [{"text", "reply": normalize_reply(text), "answer": normalize_answer(text)}]  (~300 real strings
                        from the four dialogue JSONs, lambada and pubmed_qa, plus hand-written edge cases)
     "f1": [{"a", "b", "f1": f1_score(a, b)}]  (~100 pairs of real turns: identical, neighbouring, reply-normalised,
                        random, and a few edge cases)}
     Semantics: see the docstring of icu_valid_reference.py. COPA is rebuilt from the MosaicML file (premise = query
     with ", therefore"/", because" -> ".", choices " " + Capitalised), MathQA choices have no leading space.
  DIR/lm_eval_data/     piqa.jsonl (shared piqa_valid_first500.jsonl records + "label" from the .lst line),
                        arc_easy.jsonl (from the MosaicML arc_easy test file, rebuilt in HF ai2_arc layout:
                        id "q<i>", question = query without "Question: ", choices {"text", "label": A, B, ...},
                        answerKey), winogrande.jsonl (shared winogrande_dev_first500.jsonl as is)
  DIR/lm_eval_tasks/    lethe_piqa.yaml, lethe_arc_easy.yaml, lethe_winogrande.yaml: `include:` of the installed
                        lm-eval task yaml (absolute path), overriding only dataset_path json, dataset_name null,
                        dataset_kwargs {data_files: {validation: ...}, cache_dir: DIR/hf_datasets_cache},
                        training/test split null, validation split "validation", tag [].
  DIR/lm_eval.json      {"max_length": M, "limit": N, "lm_eval_version": v,
     "piqa" | "arc_easy" | "winogrande": [{"doc_id", "ll": [per-request log-likelihood], "greedy": [0|1 per request],
                        "gold", "acc": 0|1 (argmax ll == gold), "acc_norm": 0|1 (argmax of ll / character length of
                        the choice without the " " delimiter; null for winogrande, whose built-in task has no acc_norm),
                        "contexts": [context string per request], "continuations": [continuation string per request]}]
                        ordered by doc_id,
     "metrics": {task: {"acc", "acc_stderr", "acc_norm", "acc_norm_stderr"}} (null where lm-eval has none; stderr is
                        lm-eval's closed-form sample-stddev/sqrt(n), no bootstrap),
     "truncated_requests": {task: number of requests with len(ctx)+len(cont) > max_length + 1}}
     lm-eval run: HFLM(pretrained=DIR/model, tokenizer=DIR/model, batch_size=8, max_length=M, device cpu, float32),
     simple_evaluate(limit=N, num_fewshot=0, log_samples=True, bootstrap_iters=1000), offline. M = max(--max-length
     (default 64), longest continuation in tokens): lm-eval asserts len(continuation) <= max_length, and PIQA doc 22's
     sol1 has 70 tokens, so M = 70 for N = 24. M this small makes lm-eval score (context + continuation)[-(M+1):][:-1]
     (left truncation, only ever of the context) on long requests. lm-eval tokenises a request as
     whole = enc(context + continuation), context_ids = enc(context), continuation_ids = whole[len(context_ids):]
     (trailing spaces of the context move to the continuation first); no BOS is added for GPT-2.
     The HF backend needs the `accelerate` package.
  DIR/hf_datasets_cache/ datasets' cache for the json loader (scratch).

Usage: make_utility_fixtures.py --out DIR [--shared-data DIR] [--limit N] [--threads T] [--max-length M]
"""
import argparse
import json
import os
import pathlib
import random
import shutil
import sys
import time
import warnings

os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TQDM_DISABLE", "1")  # lm-eval / datasets / transformers progress bars
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("DS_ACCELERATOR", "cpu")  # deepspeed (if installed) is imported by accelerate; keep it quiet
warnings.filterwarnings("ignore")

import torch  # noqa: E402
from transformers import GPT2TokenizerFast, GPTNeoConfig, GPTNeoForCausalLM  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import icu_valid_reference as icu  # noqa: E402

hf_logging.set_verbosity_error()
EOS = icu.EOS
MAX_LENGTH = 64  # lm-eval max_length


# ------------------------------------------------------------------------------------------------ model

def build_model(out: pathlib.Path, shared: pathlib.Path):
    torch.manual_seed(0)
    cfg = GPTNeoConfig(vocab_size=50257, max_position_embeddings=2048, hidden_size=64, num_layers=2, num_heads=4,
                       attention_types=[[["global", "local"], 1]], window_size=256, intermediate_size=256,
                       initializer_range=0.1, embed_dropout=0.0, resid_dropout=0.0, attention_dropout=0.0,
                       bos_token_id=EOS, eos_token_id=EOS)
    cfg._attn_implementation = "eager"
    model = GPTNeoForCausalLM(cfg).eval()
    mdir = out / "model"
    model.save_pretrained(mdir, safe_serialization=True)
    shutil.copyfile(shared / "gpt2_tokenizer" / "encoder.json", mdir / "vocab.json")
    shutil.copyfile(shared / "gpt2_tokenizer" / "vocab.bpe", mdir / "merges.txt")
    tok = GPT2TokenizerFast.from_pretrained(mdir)
    tok.pad_token = tok.eos_token
    assert tok.eos_token_id == EOS and tok.pad_token_id == EOS and tok("hello world")["input_ids"] == [31373, 995]
    return model, tok


# ------------------------------------------------------------------------------------------------ ICU part

EDGE_CASES = [
    "", " ", "  double  spaces ", "what ? yes . ok !", "i'm here", "i ' m", "i ' m here , i think", "The a an the",
    "a.b,c", "is it?", "really ?", "hello .", "wow!!", "end with quote'", 'end with dquote"', "(paren)",
    "Éclair café", "ÉCLAIR Über naïve", "i i i", "i'd i'll i've", ". leading dot", "? ! .", "so...what", "x ?y",
    "hi <extra_id_0> there <extra_id_1>", "An apple a day", "the", "theatre anthem", "tab\there", "new\nline",
    "don't won't can't", "it's 5 o'clock , isn't it ?", "multiple   spaces   inside", "UPPER CASE TEXT",
    "'quoted'", "'tis the season", "i.e. e.g.", "100% sure - yes!", "smile :)", "ok ... fine",
]


def normalize_cases(shared: pathlib.Path) -> list:
    texts = []
    for name in ("wizard_of_wikipedia", "empathetic_dialogues", "blended_skill_talk", "wizard_of_internet"):
        turns = [t for d in icu.read_dialogues(shared / "icu" / "validation_data" / f"{name}.json", 12) for t in d]
        texts += turns[:60]
    texts += icu.read_text_column(shared / "icu" / "lambada.csv", 20)
    import pandas as pd
    pm = pd.read_csv(shared / "icu" / "pubmed_qa.csv").head(20)
    texts += pm["question"].tolist() + pm["long_answer"].tolist()[:10]
    texts += EDGE_CASES
    return [{"text": t, "reply": icu.normalize_reply(t), "answer": icu.normalize_answer(t)} for t in texts]


def f1_cases(shared: pathlib.Path) -> list:
    turns = [t for d in icu.read_dialogues(shared / "icu" / "validation_data" / "wizard_of_wikipedia.json", 20)
             for t in d]
    turns += [t for d in icu.read_dialogues(shared / "icu" / "validation_data" / "empathetic_dialogues.json", 20)
              for t in d]
    rng = random.Random(0)
    pairs = [(turns[i], turns[i]) for i in range(0, 60, 3)]                          # identical
    pairs += [(turns[i], turns[i + 1]) for i in range(40)]                           # neighbours: shared words
    pairs += [(turns[i], icu.normalize_reply(turns[i])) for i in range(40, 60)]      # same words, other spelling
    pairs += [(turns[i], " ".join(turns[i].split()[: max(1, len(turns[i].split()) // 2)])) for i in range(60, 70)]
    pairs += [(rng.choice(turns), rng.choice(turns)) for _ in range(10)]             # mostly unrelated
    pairs += [("", ""), ("", "a word"), ("the a an", "the"), ("The cat!", "cat"), ("cat cat cat", "cat"),
              ("Éclair café", "eclair cafe"), ("<extra_id_0>", "x")]
    return [{"a": a, "b": b, "f1": float(icu.f1_score(a, b))} for a, b in pairs]


def manual_greedy(model, sources: list, length: int, new: int) -> list:
    """Greedy decoding without generate(): full forward per step, left padding, mask = ids != EOS for the prompt and
    1 for generated tokens, position_ids = cumsum(mask) - 1 (0 on padded slots). Cross-checks generate()."""
    seq = torch.tensor([[EOS] * (length - len(s)) + list(s) for s in sources], dtype=torch.long)
    mask = seq.ne(EOS).long()
    done = torch.zeros(len(sources), dtype=torch.bool)
    with torch.no_grad():
        for _ in range(new):
            pos = (mask.cumsum(-1) - 1).clamp(min=0)
            hidden = model.transformer(input_ids=seq, attention_mask=mask, position_ids=pos).last_hidden_state
            nxt = model.lm_head(hidden[:, -1]).argmax(-1)
            nxt = torch.where(done, torch.full_like(nxt, EOS), nxt)
            done |= nxt.eq(EOS)
            seq = torch.cat([seq, nxt[:, None]], 1)
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], 1)
            if bool(done.all()):
                break
    out = []
    for row in seq[:, length:].tolist():
        out.append(row[:row.index(EOS)] if EOS in row else row)
    return out


def long_cases(model, tok, shared: pathlib.Path) -> dict:
    """Inputs over 512 tokens, which the real items above never reach: the source keeps its first 512 tokens, then
    classification drops the first contlen tokens again ((ctx + choice)[-512:][:-1]) and the dialogue prompt is
    generated from without padding (new tokens at positions 512..543)."""
    vd = shared / "icu" / "validation_data"
    wiki = icu.read_text_column(vd / "wikitext.csv", 4)
    items = [{"context": wiki[k] + "\n\n" + wiki[k + 1], "choices": [" yes", " no", " The lobster"], "gold": 0}
             for k in (0, 2)]
    for it in items:
        assert len(tok(it["context"])["input_ids"]) > icu.LENGTH
    cls = icu.score_classification(model, tok, items)
    wow = icu.read_dialogues(vd / "wizard_of_wikipedia.json", 4)
    turns = [t for d in wow for t in d]
    dialogues = [turns, turns[1:]]  # the second starts with "User 1" on another speaker: parity of the last label
    for d in dialogues:
        assert len(tok(icu.dialogue_prompt(d[:-1]))["input_ids"]) > icu.LENGTH
    dia = icu.score_dialogue(model, tok, dialogues)
    return {"classification": [dict(it, **r) for it, r in zip(items, cls)],
            "dialogue": [dict(r, turns=d) for d, r in zip(dialogues, dia)]}


def icu_part(model, tok, shared: pathlib.Path, out: pathlib.Path, n: int) -> None:
    t0 = time.time()
    ds = shared / "downstream"
    vd = shared / "icu" / "validation_data"
    res = {"limit": n}
    items = {
        "mathqa": icu.read_mathqa(ds / "mathqa_dev_first500.jsonl", n),
        "copa": icu.read_copa(ds / "copa_validation_llmfoundry.jsonl", n),
        "pubmedqa": icu.read_pubmedqa(shared / "icu" / "pubmed_qa.csv", n),
    }
    # cross-check: full [B, 512, V] log_softmax at batch size 2 == rows-only at batch size 8
    full = icu.score_classification(model, tok, items["mathqa"][:2], batch_size=2, full_logits=True)
    for name, it in items.items():
        res[name] = icu.score_classification(model, tok, it, batch_size=8)
    gap = max(abs(a - b) for x, y in zip(full, res["mathqa"][:2]) for a, b in zip(x["ll"], y["ll"]))
    assert gap < 1e-3, f"full-logits vs rows-only mismatch {gap}"
    res["lambada"] = icu.score_lambada(model, tok, icu.read_text_column(shared / "icu" / "lambada.csv", n))

    dn = min(n, 12)
    res["dialogue_limit"] = dn
    for name in ("wizard_of_wikipedia", "empathetic_dialogues"):
        dialogues = icu.read_dialogues(vd / f"{name}.json", dn)
        res[name] = icu.score_dialogue(model, tok, dialogues, batch_size=8)
    srcs = [icu.encode_source(tok, r["prompt"]) for r in res["wizard_of_wikipedia"][:4]]
    manual = manual_greedy(model, srcs, icu.LENGTH, 32)
    assert manual == [r["tokens"] for r in res["wizard_of_wikipedia"][:4]], "generate() vs manual greedy mismatch"

    for name in ("pile", "wikitext"):
        res[name] = icu.perplexity(model, tok, icu.read_text_column(vd / f"{name}.csv", n))
    res["long"] = long_cases(model, tok, shared)
    res["normalize"] = normalize_cases(shared)
    res["f1"] = f1_cases(shared)
    with open(out / "icu.json", "w", encoding="utf-8") as f:
        json.dump(res, f, ensure_ascii=False, indent=1)

    acc = lambda rs: sum(r["pred"] == r["gold"] for r in rs) / len(rs)
    mean = lambda rs, k: sum(r[k] for r in rs) / len(rs)
    print(f"icu ({time.time() - t0:.1f}s): mathqa acc {acc(res['mathqa']):.3f}, copa {acc(res['copa']):.3f}, "
          f"pubmedqa {acc(res['pubmedqa']):.3f}; lambada acc {mean(res['lambada'], 'correct'):.3f} "
          f"f1 {mean(res['lambada'], 'f1'):.3f}; wow f1 {mean(res['wizard_of_wikipedia'], 'f1'):.3f}, "
          f"ed f1 {mean(res['empathetic_dialogues'], 'f1'):.3f} ({dn} each); "
          f"pile ppl {res['pile']['ppl']:.1f} ({len(res['pile']['window_losses'])} windows), "
          f"wikitext ppl {res['wikitext']['ppl']:.1f} ({len(res['wikitext']['window_losses'])} windows); "
          f"{len(res['normalize'])} normalize, {len(res['f1'])} f1 cases; full-logits gap {gap:.2g}")


# ------------------------------------------------------------------------------------------------ lm-eval part

def write_lm_eval_inputs(shared: pathlib.Path, out: pathlib.Path, tasks_dir: pathlib.Path) -> dict:
    ds = shared / "downstream"
    data = out / "lm_eval_data"
    tdir = out / "lm_eval_tasks"
    data.mkdir(parents=True, exist_ok=True)
    tdir.mkdir(parents=True, exist_ok=True)

    with open(ds / "piqa_valid-labels_first500.lst", encoding="utf-8") as f:
        labels = [int(x) for x in f.read().split()]
    piqa = icu._jsonl(ds / "piqa_valid_first500.jsonl")
    assert len(labels) == len(piqa)
    arc = []
    for i, r in enumerate(icu._jsonl(ds / "arc_easy_test_first500_llmfoundry.jsonl")):
        assert r["query"].startswith("Question: ")
        letters = [chr(ord("A") + k) for k in range(len(r["choices"]))]
        arc.append({"id": f"q{i}", "question": r["query"][len("Question: "):],
                    "choices": {"text": r["choices"], "label": letters}, "answerKey": letters[r["gold"]]})
    wino = icu._jsonl(ds / "winogrande_dev_first500.jsonl")
    rows = {"piqa": [dict(r, label=l) for r, l in zip(piqa, labels)], "arc_easy": arc, "winogrande": wino}
    for name, rs in rows.items():
        with open(data / f"{name}.jsonl", "w", encoding="utf-8") as f:
            for r in rs:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")

    builtin = {"piqa": tasks_dir / "piqa" / "piqa.yaml", "arc_easy": tasks_dir / "arc" / "arc_easy.yaml",
               "winogrande": tasks_dir / "winogrande" / "default.yaml"}
    cache = (out / "hf_datasets_cache").resolve()
    for name, yml in builtin.items():
        assert yml.is_file(), f"lm-eval built-in task yaml missing: {yml}"
        cfg = {"include": str(yml), "task": f"lethe_{name}", "tag": [], "dataset_path": "json", "dataset_name": None,
               "dataset_kwargs": {"data_files": {"validation": str((data / f"{name}.jsonl").resolve())},
                                  "cache_dir": str(cache)},
               "training_split": None, "validation_split": "validation", "test_split": None,
               "fewshot_split": None}
        with open(tdir / f"lethe_{name}.yaml", "w", encoding="utf-8") as f:
            json.dump(cfg, f, indent=1)  # JSON is valid YAML
            f.write("\n")
    return rows


def _requests(sample: dict) -> list:
    """(context, continuation) per request from a logged sample's "arguments"."""
    args = sample["arguments"]
    if isinstance(args, dict):  # {"gen_args_0": {"arg_0": ctx, "arg_1": cont}, ...}
        keys = sorted(args, key=lambda k: int(k.rsplit("_", 1)[1]))
        return [(args[k]["arg_0"], args[k]["arg_1"]) for k in keys]
    return [(a[0], a[1]) for a in args]


def _resp(r) -> tuple:
    while isinstance(r, (list, tuple)) and len(r) == 1:
        r = r[0]
    return float(r[0]), int(bool(r[1]))


def _argmax(xs: list) -> int:
    return max(range(len(xs)), key=lambda j: (xs[j], -j))


def lm_eval_part(out: pathlib.Path, shared: pathlib.Path, n: int, min_length: int) -> None:
    t0 = time.time()
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager, get_task_dict
    import logging
    for name in ("lm-eval", "lm_eval", "datasets", "transformers"):
        logging.getLogger(name).setLevel(logging.ERROR)
    tasks_dir = pathlib.Path(lm_eval.tasks.__file__).resolve().parent
    rows = write_lm_eval_inputs(shared, out, tasks_dir)

    mdir = str((out / "model").resolve())
    names = ["piqa", "arc_easy", "winogrande"]
    include = str((out / "lm_eval_tasks").resolve())
    make_lm = lambda length: HFLM(pretrained=mdir, tokenizer=mdir, batch_size=8, max_length=length, device="cpu",
                                  dtype="float32")
    # lm-eval asserts len(continuation tokens) <= max_length: raise max_length to the longest continuation among
    # the evaluated requests (lm-eval's own request strings and _encode_pair) where the floor is too small.
    lm = make_lm(min_length)
    longest = 0
    for task in get_task_dict([f"lethe_{t}" for t in names], TaskManager(include_path=include)).values():
        task.build_all_requests(limit=n)
        for inst in task.instances:
            longest = max(longest, len(lm._encode_pair(*inst.args)[1]))
    max_length = max(min_length, longest)
    if max_length != min_length:
        lm = make_lm(max_length)
    assert lm.max_length == max_length
    results = lm_eval.simple_evaluate(
        model=lm, tasks=[f"lethe_{t}" for t in names], num_fewshot=0, limit=n, log_samples=True,
        bootstrap_iters=1000,  # > 0 so acc_stderr is reported; `mean` uses the closed form, nothing is resampled
        task_manager=TaskManager(include_path=include))

    doc = {"max_length": max_length, "limit": n, "lm_eval_version": getattr(lm_eval, "__version__", "?"),
           "metrics": {}, "truncated_requests": {}}
    summary = []
    for name in names:
        task = f"lethe_{name}"
        recs = []
        for s in sorted(results["samples"][task], key=lambda s: s["doc_id"]):
            i = int(s["doc_id"])
            reqs = _requests(s)
            resps = [_resp(r) for r in s["filtered_resps"]]
            ll = [r[0] for r in resps]
            raw = rows[name][i]
            if name == "piqa":
                gold, choices = raw["label"], [raw["sol1"], raw["sol2"]]
            elif name == "arc_easy":
                gold, choices = raw["choices"]["label"].index(raw["answerKey"]), raw["choices"]["text"]
            else:
                gold, choices = int(raw["answer"]) - 1, None
            pred = _argmax(ll)
            acc = int(pred == gold)
            assert acc == int(s["acc"]), (task, i, ll, gold, s["acc"])
            acc_norm = None
            if "acc_norm" in s:
                acc_norm = int(s["acc_norm"])
                norm = [x / len(c) for x, c in zip(ll, choices)]
                assert acc_norm == int(_argmax(norm) == gold), (task, i)
            ctxs, conts = [r[0] for r in reqs], [r[1] for r in reqs]
            if name == "arc_easy":
                assert all(c.startswith("Question: ") and c.endswith("\nAnswer:") for c in ctxs)
            if name == "winogrande":
                assert len(ctxs) == 2 and ctxs[0] != ctxs[1] and conts[0] == conts[1]
            recs.append({"doc_id": i, "ll": ll, "greedy": [r[1] for r in resps], "gold": gold, "acc": acc,
                         "acc_norm": acc_norm, "contexts": ctxs, "continuations": conts})
        assert [r["doc_id"] for r in recs] == list(range(n)), task
        doc[name] = recs
        m = results["results"][task]
        val = lambda k: (m[k] if isinstance(m.get(k), (int, float)) else None)
        doc["metrics"][name] = {k: val(f"{k},none") for k in ("acc", "acc_stderr", "acc_norm", "acc_norm_stderr")}
        assert abs(doc["metrics"][name]["acc"] - sum(r["acc"] for r in recs) / n) < 1e-12
        trunc = 0
        for r in recs:
            for c, x in zip(r["contexts"], r["continuations"]):
                ce, xe = lm._encode_pair(c, x)
                assert ce[0] != EOS, "lm-eval prepended BOS/EOS"
                trunc += len(ce) + len(xe) > max_length + 1
        doc["truncated_requests"][name] = trunc
        mm = doc["metrics"][name]
        summary.append(f"{name} acc {mm['acc']:.3f}" + (f" acc_norm {mm['acc_norm']:.3f}" if mm["acc_norm"]
                                                       is not None else "") + f" ({trunc} truncated)")
    with open(out / "lm_eval.json", "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False, indent=1)
    print(f"lm-eval {doc['lm_eval_version']} ({time.time() - t0:.1f}s, max_length {max_length}, attention "
          f"{lm.model.config._attn_implementation}): " + "; ".join(summary))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=pathlib.Path)
    default_shared = os.environ.get("LETHE_SHARED_DATA",
                                    str(pathlib.Path(__file__).resolve().parents[2].parent / "shared" / "data"))
    ap.add_argument("--shared-data", type=pathlib.Path, default=pathlib.Path(default_shared))
    ap.add_argument("--limit", type=int, default=24)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--max-length", type=int, default=MAX_LENGTH,
                    help="lm-eval max_length floor (raised to the longest continuation if needed)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    if not (args.shared_data / "downstream").is_dir():
        # Every oracle here scores the real task files; without them there is nothing to compare, and
        # tests/utility/test_utility.py skips with the same message.
        print(f"shared data not found at {args.shared_data}: no utility fixtures (the utility tests skip)")
        return
    os.environ["HF_DATASETS_CACHE"] = str((args.out / "hf_datasets_cache").resolve())
    try:
        import lm_eval  # noqa: F401
        from lm_eval.models.huggingface import HFLM  # noqa: F401
        from lm_eval.tasks import TaskManager  # noqa: F401
    except Exception as err:  # noqa: BLE001
        print(f"error: lm-eval is not importable ({err!r}); install lm-eval 0.4.x into this interpreter",
              file=sys.stderr)
        sys.exit(1)
    t0 = time.time()
    model, tok = build_model(args.out, args.shared_data)
    print(f"model: tiny GPT-Neo, {sum(p.numel() for p in model.parameters())} parameters, saved to {args.out}/model")
    icu_part(model, tok, args.shared_data, args.out, args.limit)
    lm_eval_part(args.out, args.shared_data, args.limit, args.max_length)
    print(f"total {time.time() - t0:.1f}s")


if __name__ == "__main__":
    main()
