#!/usr/bin/env python3
"""Writes the HF `tokenizers` oracle for tests/text/tokenizer_json_test.cpp: Llama-style tokenizer.json files
trained at test time on TOFU, and the ids and decodes HF gives for every text.

Three tokenizers, each OUT/<name>/tokenizer.json (+ tokenizer_config.json naming eos_token):
  llama2_legacy  Llama-2's published layout: SentencePiece-style BPE with byte_fallback and fuse_unk over a
                 vocabulary of <unk> <s> </s>, the 256 <0xAB> byte tokens, then trained pieces; normalizer
                 Prepend("▁") + Replace(" ", "▁"), no pre-tokenizer, decoder Replace/ByteFallback/Fuse/Strip,
                 TemplateProcessing "<s> $A".
  llama2_meta    the same vocabulary with the newer layout: Metaspace pre-tokenizer (prepend_scheme "first")
                 and Metaspace decoder instead of the normalizer and the decoder chain.
  llama3         Llama-3's layout: Split with Llama-3's regex (Isolated) + ByteLevel without regex, byte-level
                 BPE with ignore_merges, special tokens <|begin_of_text|> <|end_of_text|> <|start_header_id|>
                 <|end_header_id|> <|eot_id|> appended after the trained vocabulary, post-processor
                 ByteLevel + TemplateProcessing "<|begin_of_text|> $A", ByteLevel decoder.
Pieces are trained on the questions and answers of ../shared/data/tofu/full.json (byte tokens cover the rest).

Also OUT/edge_fallback and OUT/edge_added: tiny hand-made files for HF's corner cases (unk around byte-fallback
bytes, fused; added tokens outside model.vocab, special tokens left as text, normalized ones inside them), with
cases.json's "edge": [{"tokenizer", "text", "ids", "ids_no_special"}].

OUT/cases.json: {"texts": [...], "<name>": {"ids": [[...] per text], "with_specials": [[...]],
  "decode": [...], "decode_skip": [...], "random_ids": [[...]], "random_decode": [...]}}, where texts are every
distinct string field of ../shared/data/tofu/*.json, the text column of the ICU target sets
(icu/exp/*/*.csv) and hand-written cases (non-Latin scripts, emoji, characters never seen in training,
special tokens inside text, runs of spaces and newlines, the empty string).

OUT/chat.json: open-unlearning's preprocess_chat_instance on TOFU rows through `transformers`: "llama3-chat"
(apply_chat_template with the Llama-3.1/3.2 Instruct chat template, system prompt and date string) on the llama3
tokenizer, "inst" ("[INST] q [/INST]" + a) and "question-answer" on llama2_legacy, each row's input_ids,
labels (-100 over the prompt) and open-unlearning's collator attention mask (ids != pad, pad = eos).

Usage: make_tokenizer_json_fixtures.py --out DIR [--shared-data DIR]
"""

import argparse
import csv
import json
import os
import random
from pathlib import Path

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
    r"|\s+(?!\S)|\s+"
)
LLAMA3_SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
HAND_WRITTEN = [
    "",
    " ",
    "   leading and trailing spaces   ",
    "tabs\tand\nnewlines\r\n\n\nand  double  spaces",
    "Ünïcödé façade — naïve café, “quotes” and ‘apostrophes’ … ½ ¾",
    "Русский текст: Москва — столица России.",
    "中文文本：北京是中国的首都。日本語のテキスト、カタカナとひらがな。한국어 텍스트",
    "العربية: القاهرة عاصمة مصر. עברית: ירושלים",
    "हिन्दी पाठ: नई दिल्ली भारत की राजधानी है। ไทย ภาษาไทย",
    "emoji 😀😃 👍🏽 family 👨‍👩‍👧‍👦 flags 🇩🇪🇯🇵 ❤️ keycap 1️⃣",
    "math ∀x∈ℝ: x²≥0, ∑ᵢ aᵢ, ∫₀¹ f(x)dx ≈ π; arrows ⇒ ↔",
    "combining: e\u0301 a\u0308 n\u0303 Z\u0351\u0352 and zero-width\u200bspace\u200d joiner",
    "rare scripts 𐌰𐌱𐌲 𓀀𓀁 ᚠᚢᚦ ꙮ",
    "numbers 1234567890 3.14159 1,000,000 -42 0x1F",
    "code: for (int i = 0; i < n; ++i) { x[i] += y[i]; } // done",
    "<s>starts with bos</s> and <unk> inside",
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi?<|eot_id|>",
    "mixed <|eot_id|>text<|end_of_text|> and <|unknown|> pseudo tokens",
    "I'm sure they've said it's what we'd do, YOU'LL see, DON'T",
    "a" * 300,
    "▁already▁has▁metaspace ▁ ▁▁",
]


# The chat template of meta-llama/Llama-3.1-8B-Instruct's tokenizer_config.json (Llama-3.2 Instruct renders
# plain system/user/assistant messages identically), verbatim.
LLAMA31_CHAT_TEMPLATE = (
    "{{- bos_token }}\n{%- if custom_tools is defined %}\n    {%- set tools = custom_tools %}\n{%- endif %}\n"
    "{%- if not tools_in_user_message is defined %}\n    {%- set tools_in_user_message = true %}\n{%- endif %}\n"
    "{%- if not date_string is defined %}\n    {%- set date_string = \"26 Jul 2024\" %}\n{%- endif %}\n"
    "{%- if not tools is defined %}\n    {%- set tools = none %}\n{%- endif %}\n\n"
    "{#- This block extracts the system message, so we can slot it into the right place. #}\n"
    "{%- if messages[0]['role'] == 'system' %}\n    {%- set system_message = messages[0]['content']|trim %}\n"
    "    {%- set messages = messages[1:] %}\n{%- else %}\n    {%- set system_message = \"\" %}\n{%- endif %}\n\n"
    "{#- System message + builtin tools #}\n{{- \"<|start_header_id|>system<|end_header_id|>\\n\\n\" }}\n"
    "{%- if builtin_tools is defined or tools is not none %}\n    {{- \"Environment: ipython\\n\" }}\n{%- endif %}\n"
    "{%- if builtin_tools is defined %}\n"
    "    {{- \"Tools: \" + builtin_tools | reject('equalto', 'code_interpreter') | join(\", \") + \"\\n\\n\"}}\n"
    "{%- endif %}\n{{- \"Cutting Knowledge Date: December 2023\\n\" }}\n"
    "{{- \"Today Date: \" + date_string + \"\\n\\n\" }}\n"
    "{%- if tools is not none and not tools_in_user_message %}\n"
    "    {{- \"You have access to the following functions. To call a function, please respond with JSON for a "
    "function call.\" }}\n"
    "    {{- 'Respond in the format {\"name\": function name, \"parameters\": dictionary of argument name and its "
    "value}.' }}\n"
    "    {{- \"Do not use variables.\\n\\n\" }}\n    {%- for t in tools %}\n        {{- t | tojson(indent=4) }}\n"
    "        {{- \"\\n\\n\" }}\n    {%- endfor %}\n{%- endif %}\n{{- system_message }}\n{{- \"<|eot_id|>\" }}\n\n"
    "{#- Custom tools are passed in a user message with some extra guidance #}\n"
    "{%- if tools_in_user_message and not tools is none %}\n"
    "    {#- Extract the first user message so we can plug it in here #}\n    {%- if messages | length != 0 %}\n"
    "        {%- set first_user_message = messages[0]['content']|trim %}\n        {%- set messages = messages[1:] %}\n"
    "    {%- else %}\n        {{- raise_exception(\"Cannot put tools in the first user message when there's no "
    "first user message!\") }}\n{%- endif %}\n"
    "    {{- '<|start_header_id|>user<|end_header_id|>\\n\\n' -}}\n"
    "    {{- \"Given the following functions, please respond with a JSON for a function call \" }}\n"
    "    {{- \"with its proper arguments that best answers the given prompt.\\n\\n\" }}\n"
    "    {{- 'Respond in the format {\"name\": function name, \"parameters\": dictionary of argument name and its "
    "value}.' }}\n"
    "    {{- \"Do not use variables.\\n\\n\" }}\n    {%- for t in tools %}\n        {{- t | tojson(indent=4) }}\n"
    "        {{- \"\\n\\n\" }}\n    {%- endfor %}\n    {{- first_user_message + \"<|eot_id|>\"}}\n{%- endif %}\n\n"
    "{%- for message in messages %}\n"
    "    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}\n"
    "        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + "
    "'<|eot_id|>' }}\n"
    "    {%- elif 'tool_calls' in message %}\n        {%- if not message.tool_calls|length == 1 %}\n"
    "            {{- raise_exception(\"This model only supports single tool-calls at once!\") }}\n        {%- endif %}\n"
    "        {%- set tool_call = message.tool_calls[0].function %}\n"
    "        {%- if builtin_tools is defined and tool_call.name in builtin_tools %}\n"
    "            {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}\n"
    "            {{- \"<|python_tag|>\" + tool_call.name + \".call(\" }}\n"
    "            {%- for arg_name, arg_val in tool_call.arguments | items %}\n"
    "                {{- arg_name + '=\"' + arg_val + '\"' }}\n                {%- if not loop.last %}\n"
    "                    {{- \", \" }}\n                {%- endif %}\n                {%- endfor %}\n"
    "            {{- \")\" }}\n        {%- else  %}\n"
    "            {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}\n"
    "            {{- '{\"name\": \"' + tool_call.name + '\", ' }}\n            {{- '\"parameters\": ' }}\n"
    "            {{- tool_call.arguments | tojson }}\n            {{- \"}\" }}\n        {%- endif %}\n"
    "        {%- if builtin_tools is defined %}\n            {#- This means we're in ipython mode #}\n"
    "            {{- \"<|eom_id|>\" }}\n        {%- else %}\n            {{- \"<|eot_id|>\" }}\n        {%- endif %}\n"
    "    {%- elif message.role == \"tool\" or message.role == \"ipython\" %}\n"
    "        {{- \"<|start_header_id|>ipython<|end_header_id|>\\n\\n\" }}\n"
    "        {%- if message.content is mapping or message.content is iterable %}\n"
    "            {{- message.content | tojson }}\n        {%- else %}\n            {{- message.content }}\n"
    "        {%- endif %}\n        {{- \"<|eot_id|>\" }}\n    {%- endif %}\n{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}\n{%- endif %}\n"
)
SYSTEM_PROMPT, DATE_STRING = "You are a helpful assistant.", "10 Apr 2025"  # open-unlearning's Llama-3.2 config
TEMPLATE_TAGS = {"inst": ("[INST] ", " [/INST]"), "question-answer": ("Question: ", "\nAnswer: ")}


def ids_of(encoded) -> list[int]:
    """apply_chat_template returns a list in transformers 4.x and a BatchEncoding in 5.x."""
    return list(encoded["input_ids"] if hasattr(encoded, "keys") else encoded)


def preprocess_chat_instance(tok, fmt: str, question: str, answer: str, max_length: int = 512) -> dict:
    """open-unlearning src/data/utils.py preprocess_chat_instance (one turn, training) + its collator's mask."""
    if fmt == "llama3-chat":
        chat = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": question},
                {"role": "assistant", "content": answer}]
        chat_ids = ids_of(tok.apply_chat_template(chat, tokenize=True, add_generation_prompt=False,
                                                  date_string=DATE_STRING))
        prompt_ids = ids_of(tok.apply_chat_template(chat[:-1], tokenize=True, add_generation_prompt=True,
                                                    date_string=DATE_STRING))
    else:
        start, end = TEMPLATE_TAGS[fmt]
        wrapped = start + question + end
        chat_ids = tok(wrapped + answer, add_special_tokens=True, max_length=max_length, truncation=True)["input_ids"]
        prompt_ids = tok(wrapped, add_special_tokens=True, max_length=max_length, truncation=True)["input_ids"]
    if chat_ids[-1] != tok.eos_token_id:
        chat_ids += [tok.eos_token_id]
    labels = [-100] * len(prompt_ids) + chat_ids[len(prompt_ids):]
    return {"question": question, "answer": answer, "ids": chat_ids, "labels": labels, "prompt_ids": prompt_ids,
            "quirk_mask": [int(i != tok.eos_token_id) for i in chat_ids]}


def chat_cases(shared: Path, toks: dict) -> dict:
    from transformers import PreTrainedTokenizerFast

    rows = []
    with open(shared / "tofu" / "forget10.json", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()][:80]
    pairs = [(r["question"], r["answer"]) for r in rows]
    pairs += [("  padded question?  ", "\tanswer with spaces \n"), ("Москва — столица?", "Да 😀"),
              ("Is <|eot_id|> special?", "It ends a turn<|eot_id|>")]
    llama3 = PreTrainedTokenizerFast(tokenizer_object=toks["llama3"], bos_token="<|begin_of_text|>",
                                     eos_token="<|eot_id|>")
    llama3.chat_template = LLAMA31_CHAT_TEMPLATE
    llama2 = PreTrainedTokenizerFast(tokenizer_object=toks["llama2_legacy"], bos_token="<s>", eos_token="</s>",
                                     unk_token="<unk>")
    out = {"system_prompt": SYSTEM_PROMPT, "date_string": DATE_STRING}
    out["llama3-chat"] = [preprocess_chat_instance(llama3, "llama3-chat", q, a) for q, a in pairs]
    out["inst"] = [preprocess_chat_instance(llama2, "inst", q, a) for q, a in pairs]
    out["question-answer"] = [preprocess_chat_instance(llama2, "question-answer", q, a) for q, a in pairs]
    out["inst-truncated"] = [preprocess_chat_instance(llama2, "inst", q, a, max_length=24) for q, a in pairs[:10]]
    return out


def tofu_texts(shared: Path) -> list[str]:
    texts = []
    for path in sorted((shared / "tofu").glob("*.json")):
        with open(path, encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                row = json.loads(line)
                for value in row.values():
                    values = value if isinstance(value, list) else [value]
                    texts += [v for v in values if isinstance(v, str)]
    return texts


def icu_texts(shared: Path) -> list[str]:
    texts = []
    for path in sorted((shared / "icu" / "exp").glob("*/*.csv")):
        with open(path, newline="", encoding="utf-8") as f:
            texts += [row["text"] for row in csv.DictReader(f)]
    return texts


def training_texts(shared: Path) -> list[str]:
    out = []
    with open(shared / "tofu" / "full.json", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                row = json.loads(line)
                out += [row["question"], row["answer"]]
    return out


def llama2_tokenizers(train: list[str]) -> dict[str, Tokenizer]:
    trainer_tok = Tokenizer(models.BPE())
    trainer_tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    trainer_tok.train_from_iterator(train, trainers.BpeTrainer(vocab_size=1500, show_progress=False, limit_alphabet=120))
    trained = json.loads(trainer_tok.to_str())["model"]
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for token in sorted(trained["vocab"], key=trained["vocab"].get):
        vocab.setdefault(token, len(vocab))
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in trained["merges"]]

    def base() -> Tokenizer:
        tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", fuse_unk=True, byte_fallback=True))
        tok.add_special_tokens(["<unk>", "<s>", "</s>"])
        tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
        return tok

    legacy = base()
    legacy.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    legacy.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    meta = base()
    meta.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
    meta.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first", split=False)
    return {"llama2_legacy": legacy, "llama2_meta": meta}


def llama3_tokenizer(train: list[str]) -> Tokenizer:
    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=2000, show_progress=False, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(train, trainer)
    tok.add_special_tokens(LLAMA3_SPECIALS)
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.Sequence(
        [
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(single="<|begin_of_text|> $A", special_tokens=[("<|begin_of_text|>", bos)]),
        ]
    )
    return tok


EDGE_TEXTS = ["€é€€ab", "x€éy", "é", "abab€", "hello<|a|>x|a", "<|a|>", "|a|a", "hellohello", "he|a"]


def edge_tokenizers() -> dict[str, Tokenizer]:
    """Small hand-made files for HF's corner cases: unknown characters around byte-fallback bytes (fused unk), and
    added tokens that are not in model.vocab, special ones left as text, and normalized ones found inside them."""
    fallback = Tokenizer(models.BPE(vocab={"<unk>": 0, "<0xC3>": 1, "<0xA9>": 2, "a": 3, "b": 4, "ab": 5},
                                    merges=[("a", "b")], unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    fallback.add_special_tokens(["<unk>", "</s>"])
    added = Tokenizer(models.BPE(vocab={"h": 0, "e": 1, "l": 2, "o": 3, "he": 4, "ll": 5},
                                 merges=[("h", "e"), ("l", "l")], ignore_merges=True))
    added.add_special_tokens([AddedToken("<|a|>", special=True)])
    added.add_tokens([AddedToken("|a", special=False)])
    added.add_special_tokens(["hello", "</s>"])
    return {"edge_fallback": fallback, "edge_added": added}


def edge_cases(toks: dict[str, Tokenizer]) -> list[dict]:
    out = []
    for name, tok in toks.items():
        for text in EDGE_TEXTS:
            tok.encode_special_tokens = False
            ids = tok.encode(text, add_special_tokens=False).ids
            tok.encode_special_tokens = True
            plain = tok.encode(text, add_special_tokens=False).ids
            tok.encode_special_tokens = False
            out.append({"tokenizer": name, "text": text, "ids": ids, "ids_no_special": plain})
    return out


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    default_shared = os.environ.get("LETHE_SHARED_DATA", str(Path(__file__).resolve().parents[3] / "shared" / "data"))
    ap.add_argument("--shared-data", type=Path, default=Path(default_shared))
    args = ap.parse_args()

    train = training_texts(args.shared_data)
    texts = list(dict.fromkeys(tofu_texts(args.shared_data) + icu_texts(args.shared_data) + HAND_WRITTEN))
    toks = llama2_tokenizers(train)
    toks["llama3"] = llama3_tokenizer(train)
    eos = {"llama2_legacy": "</s>", "llama2_meta": "</s>", "llama3": "<|eot_id|>"}

    cases = {"texts": texts}
    rng = random.Random(0)
    for name, tok in toks.items():
        d = args.out / name
        d.mkdir(parents=True, exist_ok=True)
        write_atomic(d / "tokenizer.json", tok.to_str(pretty=False))
        write_atomic(d / "tokenizer_config.json", json.dumps({"eos_token": eos[name]}))
        plain = tok.encode_batch(texts, add_special_tokens=False)
        specials = tok.encode_batch(texts[:200], add_special_tokens=True)
        ids = [e.ids for e in plain]
        n = tok.get_vocab_size()
        random_ids = [[rng.randrange(n) for _ in range(rng.randint(1, 12))] for _ in range(300)]
        cases[name] = {
            "ids": ids,
            "with_specials": [e.ids for e in specials],
            "decode": tok.decode_batch(ids, skip_special_tokens=False),
            "decode_skip": tok.decode_batch(ids, skip_special_tokens=True),
            "random_ids": random_ids,
            "random_decode": tok.decode_batch(random_ids, skip_special_tokens=False),
        }
        print(f"{name}: vocab {n}, {len(texts)} texts, {sum(map(len, ids))} ids")
    edge = edge_tokenizers()
    for name, tok in edge.items():
        (args.out / name).mkdir(parents=True, exist_ok=True)
        write_atomic(args.out / name / "tokenizer.json", tok.to_str(pretty=False))
    cases["edge"] = edge_cases(edge)
    write_atomic(args.out / "cases.json", json.dumps(cases, ensure_ascii=False))
    write_atomic(args.out / "chat.json", json.dumps(chat_cases(args.shared_data, toks), ensure_ascii=False))


if __name__ == "__main__":
    main()
