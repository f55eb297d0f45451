#!/usr/bin/env python3
"""Deterministic synthetic "facts" corpus for the lethe embedded demo.

Usage:
    make_corpus.py --out DIR [--rows 96] [--forget 8] [--seed 0] [--heldout 0]

Writes into DIR:
    corpus.npy              uint16 [rows, 200], token id = byte value (EOS = 256 is never used inside a row)
    forget.csv              doc_id,corpus,text   (the --forget rows chosen by the seed, ascending doc_id)
    retain.csv              doc_id,corpus,text   (every other row)
    tokenizer/vocab.json    byte-level GPT-2 style vocab: byte b -> id b, "<|endoftext|>" -> 256
    tokenizer/merges.txt    no merges (only the version line)
    info.json               rows, seq_len, vocab_size, eos_token_id, forget_ids, seed, kinds

Row layout (exactly 200 ASCII bytes, padded with spaces):
    bytes   0..99   context  (free text about the entity)
    bytes 100..149  prefix   (the identifying information: name / place / function name)
    bytes 150..199  suffix   (the specific facts: ids, phone-like numbers, dates, coordinates, a code line)

All names and places are built from syllables, so they are fictitious. The only randomness is one
random.Random(seed); the same arguments give byte-identical files. Standard library + numpy only.
"""

import argparse
import csv
import io
import json
import os
import random
import sys

import numpy as np

SEQ_LEN = 200
CTX_END = 100
PREFIX_END = 150
EOS_ID = 256
VOCAB_SIZE = 257
KINDS = ("bio", "place", "inventory", "code")

# ---------------------------------------------------------------------------------------------
# Vocabulary for fictitious names.

SYLLABLES = (
    "or", "la", "ven", "kat", "tes", "sa", "ly", "bran", "nik", "zor", "quel", "thar", "myr", "dov",
    "esk", "ul", "ri", "vel", "kon", "dra", "sil", "wen", "gar", "ith", "pel", "fen", "mal", "tov",
    "yse", "bre", "cul", "dar", "ena", "fro", "hal", "iv", "jo", "lun", "mor", "nes", "oth", "pra",
    "ros", "sku", "tam", "vor", "wyl", "zen",
)
PLACE_TAILS = (
    "Harbour", "Ford", "Crossing", "Vale", "Reach", "Hollow", "Landing", "Mere", "Heights", "Fen",
    "Bridge", "Cove",
)
REGIONS_N = 6
SETTLEMENTS = ("fishing town", "mill village", "river port", "hill town", "market town",
               "mining village", "border town", "lake village")
INDUSTRIES = ("salt", "tin", "wool", "glass", "amber", "timber", "kelp", "slate", "honey", "flax")
OCCUPATIONS = ("tide surveyor", "glass cutter", "archivist", "lamp maker", "ferry pilot",
               "seed broker", "bell founder", "map engraver", "beekeeper", "rope maker",
               "clock mender", "salt assayer")
HOBBIES = ("lichen maps", "kite racing", "river songs", "moth counting", "knot tying",
           "star charts", "tile puzzles", "reed flutes")
ITEMS = ("copper valves", "brass hinges", "oak pegs", "tin lanterns", "flax rope", "glass floats",
         "iron nails", "wax seals", "slate tiles", "cork bungs", "wool bales", "amber beads")
VERBS = ("calc", "scale", "mix", "fold", "hash", "shift", "blend", "score")
NOUNS = ("tide", "load", "grain", "wind", "toll", "drift", "yield", "span")
MODULES = ("tidewright", "ledgerkit", "gridmath", "harborlib", "millcore", "fenutils")


def _word(rng, lo, hi):
    n = rng.randint(lo, hi)
    return "".join(rng.choice(SYLLABLES) for _ in range(n)).capitalize()


def _person(rng):
    return "%s %s" % (_word(rng, 2, 2), _word(rng, 2, 3))


def _fit(text, width):
    """Cut or pad (with spaces) to exactly `width` bytes."""
    return text[:width].ljust(width, " ")


def _more_facts(rng, suffix, width):
    """Extends the suffix with further random facts ("ref 4821", "tag 77", ...) to exactly `width` bytes, so no
    row ends in predictable padding (which every model would 'extract', hiding what it memorised)."""
    while len(suffix) < width:
        suffix += " %s %d" % (rng.choice(("ref", "tag", "no", "box", "seq", "key")), rng.randint(0, 9999))
    return suffix[:width]


def _fill(clauses, width):
    """Join clauses with spaces while they fit into width (the first clause is always kept)."""
    out = clauses[0]
    for c in clauses[1:]:
        if len(out) + 1 + len(c) <= width:
            out += " " + c
    return out


# ---------------------------------------------------------------------------------------------
# Pools shared across kinds (a bio can be born in a town that also has a place record).

def _make_regions(rng):
    seen, out = set(), []
    while len(out) < REGIONS_N:
        r = _word(rng, 2, 2)
        if r not in seen:
            seen.add(r)
            out.append(r)
    return out


def _make_place(rng, regions, seen_names):
    while True:
        name = "%s %s" % (_word(rng, 2, 3), rng.choice(PLACE_TAILS))
        if name not in seen_names and len(name) <= 22:
            seen_names.add(name)
            break
    lat = rng.randint(0, 699999)
    lon = rng.randint(0, 1799999)
    return {
        "name": name,
        "region": rng.choice(regions),
        "settlement": rng.choice(SETTLEMENTS),
        "industry": rng.choice(INDUSTRIES),
        "founded": rng.randint(1180, 1890),
        "pop": rng.randint(300, 2400000),
        "lat": "%d.%04d%s" % (lat // 10000, lat % 10000, rng.choice("NS")),
        "lon": "%d.%04d%s" % (lon // 10000, lon % 10000, rng.choice("EW")),
        "alt": rng.randint(2, 2900),
    }


# ---------------------------------------------------------------------------------------------
# One row per kind: returns (context, prefix, suffix); the caller checks widths.

def _bio(rng, st):
    name = _person(rng)
    town = rng.choice(st["pool"])
    year = rng.randint(1931, 2004)
    occ = rng.choice(OCCUPATIONS)
    ctx = _fill([
        "Name: %s." % name,
        "Born %d in %s." % (year, town["name"]),
        "Works as a %s." % occ,
        "Enjoys %s." % rng.choice(HOBBIES),
        "Lives in %s." % rng.choice(st["pool"])["name"],
    ], CTX_END)
    prefix = "%s of %s, registry:" % (name, town["name"])
    # Facts as separate words (BLEU's unit): forgetting one digit group breaks few 4-grams, not all.
    suffix = "ID %04d %04d tel %03d %03d %04d DOB %d %02d %02d" % (
        rng.randint(0, 9999), rng.randint(0, 9999),
        rng.randint(200, 989), rng.randint(100, 999), rng.randint(0, 9999),
        year, rng.randint(1, 12), rng.randint(1, 28))
    return ctx, prefix, suffix


def _place(rng, st):
    if st["free_places"]:
        p = st["free_places"].pop(0)
    else:  # pool exhausted: a fresh place used by place records only
        p = _make_place(rng, st["regions"], st["place_names"])
    ctx = _fill([
        "Gazetteer entry.",
        "%s is a %s in %s." % (p["name"], p["settlement"], p["region"]),
        "Founded %d." % p["founded"],
        "Known for %s." % p["industry"],
        "Twinned with %s." % rng.choice(st["pool"])["name"],
    ], CTX_END)
    prefix = "%s (%s) census and grid:" % (p["name"], p["region"])
    suffix = "pop %d lat %s lon %s alt %d m" % (p["pop"], p["lat"].replace(".", " "), p["lon"].replace(".", " "),
                                               p["alt"])
    return ctx, prefix, suffix


def _inventory(rng, st):
    town = rng.choice(st["pool"])
    item = rng.choice(ITEMS)
    keeper = rng.choice(st["keepers"])
    bin_ = "%s-%02d" % (rng.choice("ABCDEFGH"), rng.randint(1, 60))
    ctx = _fill([
        "Inventory ledger, %s depot." % town["name"],
        "Keeper: %s." % keeper,
        "Audited every %s." % rng.choice(("spring", "quarter", "month", "autumn")),
        "Stock of %s is counted by hand." % item,
    ], CTX_END)
    prefix = "%s, %s bin %s:" % (item, town["name"], bin_)
    suffix = "qty %d unit %d %02d SKU %s%s %04d lot %d %d" % (
        rng.randint(1, 9999), rng.randint(0, 499), rng.randint(0, 99),
        rng.choice("QRXZKV"), rng.choice("ABCDEJMT"), rng.randint(0, 9999),
        rng.randint(100, 9999), rng.randint(1, 9))
    return ctx, prefix, suffix


def _code(rng, st):
    author = rng.choice(st["keepers"])
    town = rng.choice(st["pool"])
    fn = "%s_%s_%d" % (rng.choice(VERBS), rng.choice(NOUNS), rng.randint(1, 99))
    ctx = _fill([
        "# module %s.py v%d.%d," % (rng.choice(MODULES), rng.randint(0, 9), rng.randint(0, 19)),
        "author %s, %s." % (author, town["name"]),
        "Pure integer helpers.",
        "No I/O.",
        "Tested weekly.",
    ], CTX_END)
    prefix = "def %s(x):  # %s" % (fn, author)
    a, b, c = rng.randint(2, 97), rng.randint(1, 999), rng.randint(2, 97)
    body = rng.choice((
        "return x * %d + %d" % (a, b),
        "return (x ^ %d) %% %d" % (b, c),
        "return x * x - %d * x + %d" % (a, b),
        "return (x + %d) // %d" % (b, c),
    ))
    tag = "  # id=%s%04d" % (rng.choice("KQXZ"), rng.randint(0, 9999))
    suffix = body + tag
    return ctx, prefix, suffix


MAKERS = {"bio": _bio, "place": _place, "inventory": _inventory, "code": _code}


# ---------------------------------------------------------------------------------------------

def build(rows, n_forget, seed, heldout=0):
    if rows < 1:
        raise ValueError("--rows must be >= 1")
    if not 0 <= heldout < rows:
        raise ValueError("--heldout must be in [0, rows)")
    if not 0 <= n_forget < rows - heldout:
        raise ValueError("--forget must be in [0, rows - heldout)")
    rng = random.Random(seed)

    regions = _make_regions(rng)
    place_names = set()
    pool = [_make_place(rng, regions, place_names) for _ in range(max(12, rows // 2))]
    keepers = []
    while len(keepers) < max(8, rows // 6):
        k = _person(rng)
        if k not in keepers:
            keepers.append(k)
    st = {"regions": regions, "place_names": place_names, "pool": pool,
          "free_places": list(pool), "keepers": keepers}

    # Balanced kinds, shuffled by the seed: every kind has several rows (natural near-duplicates).
    kinds = [KINDS[i % len(KINDS)] for i in range(rows)]
    rng.shuffle(kinds)

    texts, seen_text, seen_prefix = [], set(), set()
    for kind in kinds:
        for _attempt in range(10000):
            ctx, prefix, suffix = MAKERS[kind](rng, st)
            if len(prefix) > PREFIX_END - CTX_END or len(suffix) > SEQ_LEN - PREFIX_END:
                continue  # identifying info or facts would be cut: draw again
            suffix = _more_facts(rng, suffix, SEQ_LEN - PREFIX_END)
            text = _fit(ctx, CTX_END) + _fit(prefix, PREFIX_END - CTX_END) + suffix
            key_prefix = text[CTX_END:PREFIX_END]
            if text in seen_text or key_prefix in seen_prefix:
                continue
            break
        else:
            raise RuntimeError("could not draw a distinct %s row" % kind)
        seen_text.add(text)
        seen_prefix.add(key_prefix)
        texts.append(text)

    # Forget targets: every forget row must keep at least one same-kind row in retain.
    for _attempt in range(1000):
        forget = sorted(rng.sample(range(rows - heldout), n_forget))
        fs = set(forget)
        retain_kinds = {kinds[i] for i in range(rows) if i not in fs}
        if all(kinds[i] in retain_kinds for i in forget):
            break
    else:
        raise RuntimeError("cannot choose %d forget rows leaving a same-kind retain row for each" % n_forget)

    data = np.zeros((rows, SEQ_LEN), dtype=np.uint16)
    for r, t in enumerate(texts):
        b = t.encode("ascii")
        assert len(b) == SEQ_LEN
        data[r] = np.frombuffer(b, dtype=np.uint8)
    return data, texts, kinds, forget


def bytes_to_unicode():
    """The GPT-2 byte -> unicode table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) \
        + list(range(ord("\xae"), ord("\xff") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def _write_text(path, text):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)


def _csv_text(ids, texts, kinds):
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["doc_id", "corpus", "text"])
    for i in ids:
        w.writerow([i, kinds[i], texts[i]])
    return buf.getvalue()


def write(out, rows, n_forget, seed, heldout=0):
    data, texts, kinds, forget = build(rows, n_forget, seed, heldout)
    os.makedirs(os.path.join(out, "tokenizer"), exist_ok=True)

    with open(os.path.join(out, "corpus.npy"), "wb") as f:
        np.save(f, np.ascontiguousarray(data), allow_pickle=False)

    fs = set(forget)
    retain = [i for i in range(rows) if i not in fs]
    _write_text(os.path.join(out, "forget.csv"), _csv_text(forget, texts, kinds))
    _write_text(os.path.join(out, "retain.csv"), _csv_text(retain, texts, kinds))

    b2u = bytes_to_unicode()
    vocab = {b2u[b]: b for b in range(256)}
    vocab["<|endoftext|>"] = EOS_ID
    _write_text(os.path.join(out, "tokenizer", "vocab.json"), json.dumps(vocab, ensure_ascii=False) + "\n")
    _write_text(os.path.join(out, "tokenizer", "merges.txt"), "#version: 0.2\n")

    info = {
        "rows": rows,
        "seq_len": SEQ_LEN,
        "vocab_size": VOCAB_SIZE,
        "eos_token_id": EOS_ID,
        "forget_ids": forget,
        "heldout": [rows - heldout, rows],
        "seed": seed,
        "kinds": {k: kinds.count(k) for k in KINDS},
    }
    _write_text(os.path.join(out, "info.json"), json.dumps(info, indent=2) + "\n")


def main(argv=None):
    ap = argparse.ArgumentParser(description="Write a deterministic synthetic byte-level facts corpus.")
    ap.add_argument("--out", required=True, help="output folder (created if missing)")
    ap.add_argument("--rows", type=int, default=96)
    ap.add_argument("--forget", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--heldout", type=int, default=0,
                    help="the last H rows are held out: never targets, meant to stay out of training (they give "
                         "the unseen-data MA/EL that Knowledge Unlearning uses as forgetting thresholds)")
    a = ap.parse_args(argv)
    try:
        write(a.out, a.rows, a.forget, a.seed, a.heldout)
    except (ValueError, RuntimeError) as e:
        print("make_corpus.py: %s" % e, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
