#!/usr/bin/env python3
"""The utility benchmark's Python peer: lm-evaluation-harness (HF backend) on the PIQA, ARC-Easy and
WinoGrande slices of ../shared/data, zero-shot, with lm-eval's own task definitions pointed at local JSONL copies
(tests/reference/make_utility_fixtures.py writes them the same way the parity test does).

Times simple_evaluate (task building, tokenisation, batched scoring, metrics) after the model is loaded, and
writes {"seconds", "threads", "batch_size", "limit", "acc": {task: acc}} to --out.

Usage: peer_utility.py --model DIR --shared-data DIR --work DIR --limit N --threads T --batch-size B --out F
"""
import argparse
import json
import logging
import os
import pathlib
import sys
import time

os.environ.update(HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TQDM_DISABLE="1",
                  TOKENIZERS_PARALLELISM="false", DS_ACCELERATOR="cpu")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests" / "reference"))

import torch  # noqa: E402

TASKS = ["piqa", "arc_easy", "winogrande"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for a in ["--model", "--shared-data", "--work", "--out"]:
        ap.add_argument(a, required=True, type=pathlib.Path)
    ap.add_argument("--limit", type=int, required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.environ["HF_DATASETS_CACHE"] = str((args.work / "hf_datasets_cache").resolve())
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager
    from make_utility_fixtures import write_lm_eval_inputs
    for name in ("lm-eval", "lm_eval", "datasets", "transformers"):
        logging.getLogger(name).setLevel(logging.ERROR)
    write_lm_eval_inputs(args.shared_data, args.work, pathlib.Path(lm_eval.tasks.__file__).resolve().parent)
    lm = HFLM(pretrained=str(args.model), tokenizer=str(args.model), batch_size=args.batch_size, device="cpu",
              dtype="float32")
    t0 = time.time()
    res = lm_eval.simple_evaluate(model=lm, tasks=[f"lethe_{t}" for t in TASKS], num_fewshot=0, limit=args.limit,
                                  task_manager=TaskManager(include_path=str((args.work / "lm_eval_tasks").resolve())))
    seconds = time.time() - t0
    acc = {t: res["results"][f"lethe_{t}"]["acc,none"] for t in TASKS}
    json.dump({"seconds": seconds, "threads": args.threads, "batch_size": args.batch_size, "limit": args.limit,
               "acc": acc}, open(args.out, "w"), indent=2)
    print(f"lm-eval: {seconds:.1f} s; acc {acc}")


if __name__ == "__main__":
    main()
