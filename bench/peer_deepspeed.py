"""DeepSpeed ZeRO peer of lethe's data-parallel ZeRO-2 engine, on CPU over gloo.

Trains transformers' GPTNeoForCausalLM (random init, dropout 0, global/local attention alternating, window 256)
with DeepSpeed ZeRO (stage 2 by default; --zero 0/1 also work), fp32, torch.optim.AdamW (lr 1e-5, wd 0.01,
betas 0.9/0.999) and gradient clipping 1.0, on random token ids. One step = one global batch over all ranks,
i.e. gradient accumulation = global_batch / (micro_batch * world). Rank 0 prints ONE JSON line:
  {"impl": "deepspeed", "deepspeed": ver, "world": N, "zero": S, "step_s": ..., "tokens_per_s": ...,
   "peak_rss_mb_per_rank": [...], "loss": ...}

Launch it through bench/peer_deepspeed.sh (2 ranks via torchrun, DS_ACCELERATOR=cpu, gloo), e.g.
  bash bench/peer_deepspeed.sh --layers 2 --hidden 128 --heads 4 --vocab 1000 --seq 64 \
      --micro-batch 2 --global-batch 8 --steps 3
  bash bench/peer_deepspeed.sh --seq 128 --micro-batch 2 --global-batch 8 --steps 2 --warmup 1 --threads 1
Defaults are the GPT-Neo-125M shape (12 layers, 768 hidden, 12 heads, vocab 50257).
It also runs under any launcher that sets RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT.

Requires: pip install deepspeed (no compiled ops are used: DS_BUILD_OPS=0 is fine), and DS_ACCELERATOR=cpu
in the environment before deepspeed is imported (the script sets it if missing).
"""
import argparse
import json
import logging
import os
import resource
import time

# Must be set before deepspeed is imported: the accelerator is chosen once, at first use.
os.environ.setdefault("DS_ACCELERATOR", "cpu")

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
import deepspeed  # noqa: E402
import deepspeed.ops  # noqa: E402
from transformers import GPTNeoConfig, GPTNeoForCausalLM  # noqa: E402


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--hidden", type=int, default=768)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--vocab", type=int, default=50257)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--micro-batch", type=int, default=2, help="sequences per rank per forward/backward")
    ap.add_argument("--global-batch", type=int, default=8, help="sequences per optimizer step, all ranks")
    ap.add_argument("--steps", type=int, default=3, help="timed optimizer steps")
    ap.add_argument("--warmup", type=int, default=1, help="untimed optimizer steps before the timed ones")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads per rank")
    ap.add_argument("--zero", type=int, default=2, choices=[0, 1, 2], help="ZeRO stage")
    ap.add_argument("--bucket-elems", type=int, default=int(5e8),
                    help="ZeRO reduce/allgather bucket size in elements")
    return ap.parse_args()


def ds_config(a, world):
    """DeepSpeed config: fp32, torch AdamW (no compiled CPU-Adam / FusedAdam op), ZeRO stage a.zero."""
    per_pass = a.micro_batch * world
    if a.global_batch % per_pass:
        raise SystemExit(f"--global-batch {a.global_batch} is not a multiple of micro-batch x world = {per_pass}")
    return {
        "train_batch_size": a.global_batch,
        "train_micro_batch_size_per_gpu": a.micro_batch,
        "gradient_accumulation_steps": a.global_batch // per_pass,
        "gradient_clipping": 1.0,
        # "torch_adam": true makes DeepSpeed build torch.optim.AdamW instead of DeepSpeedCPUAdam / FusedAdam
        # (deepspeed/runtime/engine.py, get_optimizer_configuration).
        "optimizer": {"type": "AdamW",
                      "params": {"lr": 1e-5, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.01,
                                 "torch_adam": True}},
        "fp16": {"enabled": False},
        "bf16": {"enabled": False},
        "zero_optimization": {
            "stage": a.zero,
            "reduce_bucket_size": a.bucket_elems,
            "allgather_bucket_size": a.bucket_elems,
            "contiguous_gradients": True,
            "overlap_comm": False,  # no side streams on CPU
        },
        "steps_per_print": 10 ** 9,  # keep DeepSpeed's own progress logging quiet
        "wall_clock_breakdown": False,
    }


def setup(a):
    """DeepSpeed engine over gloo on the GPT-Neo shape of `a`; returns (engine, rank, world, train_step)."""
    torch.set_num_threads(a.threads)
    logging.getLogger("DeepSpeed").setLevel(logging.WARNING)
    deepspeed.utils.logger.setLevel(logging.WARNING)

    # Mark every DeepSpeed C++ op incompatible before the comm backend is made. Otherwise TorchBackend.__init__
    # (deepspeed/comm/torch.py, build_shm_op) probes all ops with compiler subprocesses and JIT-builds the
    # shared-memory comm op with ninja (~1 min per rank, and a print on stdout); that op only serves
    # inference_all_reduce, never ZeRO training, which here goes through torch.distributed/gloo.
    deepspeed.ops.__compatible_ops__ = {}
    # torch.distributed over gloo; the rendezvous comes from the env (torchrun or hand-set RANK etc.).
    deepspeed.init_distributed(dist_backend="gloo")
    rank, world = dist.get_rank(), dist.get_world_size()

    # Same seed on every rank: identical initial weights (DeepSpeed broadcasts them anyway) and the same
    # random global batch, of which each rank takes its own slices.
    torch.manual_seed(0)
    n_pairs, odd = divmod(a.layers, 2)
    attention_types = [[["global", "local"], n_pairs]] + ([[["global"], 1]] if odd else [])
    cfg = GPTNeoConfig(vocab_size=a.vocab, max_position_embeddings=max(2048, a.seq), hidden_size=a.hidden,
                       num_layers=a.layers, num_heads=a.heads, attention_types=attention_types, window_size=256,
                       embed_dropout=0.0, resid_dropout=0.0, attention_dropout=0.0,
                       bos_token_id=min(50256, a.vocab - 1), eos_token_id=min(50256, a.vocab - 1))
    model = GPTNeoForCausalLM(cfg).train()

    engine, _, _, _ = deepspeed.initialize(model=model, model_parameters=model.parameters(),
                                           config=ds_config(a, world))
    gas = engine.gradient_accumulation_steps()
    ids = torch.randint(0, a.vocab, (a.global_batch, a.seq))

    def train_step():
        """One optimizer step: gas micro-batches on this rank, then DeepSpeed's reduce + clip + AdamW."""
        total = 0.0
        for m in range(gas):
            lo = (m * world + rank) * a.micro_batch  # disjoint slice of the global batch per (micro, rank)
            x = ids[lo:lo + a.micro_batch]
            loss = engine(input_ids=x, labels=x).loss
            # Scales by 1/gas. ZeRO-2 reduces each gradient bucket to its owning rank inside every backward
            # (stage_1_and_2.py, reduce_ready_partitions_and_remove_grads); ZeRO-0/1 reduce at the boundary.
            engine.backward(loss)
            engine.step()  # only steps the optimizer at the boundary
            total += loss.item()
        return total / gas

    return engine, rank, world, train_step


def main():
    a = parse_args()
    engine, rank, world, train_step = setup(a)
    gas = engine.gradient_accumulation_steps()
    for _ in range(a.warmup):
        train_step()
    dist.barrier()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        loss = train_step()
    dist.barrier()
    step_s = (time.perf_counter() - t0) / max(a.steps, 1)

    # Mean loss of the last step over ranks; peak RSS (ru_maxrss is KiB on Linux) of every rank.
    stats = torch.tensor([loss, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0], dtype=torch.float64)
    gathered = [torch.zeros_like(stats) for _ in range(world)]
    dist.all_gather(gathered, stats)
    if rank == 0:
        print(json.dumps({
            "impl": "deepspeed", "deepspeed": deepspeed.__version__, "torch": torch.__version__,
            "world": world, "zero": engine.zero_optimization_stage(), "backend": dist.get_backend(),
            "optimizer": type(engine.optimizer).__name__, "layers": a.layers, "hidden": a.hidden, "seq": a.seq,
            "micro_batch": a.micro_batch, "global_batch": a.global_batch, "grad_accum": gas,
            "threads": a.threads, "step_s": step_s, "tokens_per_s": a.global_batch * a.seq / step_s,
            "peak_rss_mb_per_rank": [round(g[1].item(), 1) for g in gathered],
            "loss": sum(g[0].item() for g in gathered) / world,
        }), flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
