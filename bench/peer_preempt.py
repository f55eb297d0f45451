"""DeepSpeed peer of lethe's pre-emption path (bench/bench_preempt.py drives both): trains the engine of
bench/peer_deepspeed.py (ZeRO-2 over gloo, GPT-Neo-125M shape) until a stop signal, then does what a
pre-emptible DeepSpeed job does — the ranks agree on the flag at the step boundary (all_reduce MAX, as lethe),
engine.save_checkpoint (model states on rank 0 plus one ZeRO optimizer shard per rank, `latest` last), exit
143. With --resume the job loads the newest checkpoint (engine.load_checkpoint) and goes on.

Rank 0 prints, flushed: `step <k> <unix time>` after every optimizer step, `resumed <step> <seconds>` after a
load and `saved <seconds>` after a save. Launch through bench/peer_deepspeed.sh with PEER=bench/peer_preempt.py
(torchrun), plus --dir DIR [--resume] [--max-steps N] and peer_deepspeed.py's shape flags.
"""
import argparse
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peer_deepspeed  # noqa: E402  (sets DS_ACCELERATOR before deepspeed is imported)
import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402

stop = 0


def on_signal(signum, _frame):
    global stop
    stop = signum


def main():
    extra = argparse.ArgumentParser(add_help=False)
    extra.add_argument("--dir", required=True)
    extra.add_argument("--resume", action="store_true")
    extra.add_argument("--max-steps", type=int, default=10 ** 6)
    e, rest = extra.parse_known_args()
    sys.argv = [sys.argv[0], *rest]
    a = peer_deepspeed.parse_args()
    for s in (signal.SIGUSR1, signal.SIGTERM):
        signal.signal(s, on_signal)
    engine, rank, _, train_step = peer_deepspeed.setup(a)
    step = 0
    if e.resume:
        t = time.perf_counter()
        _, client = engine.load_checkpoint(e.dir)
        step = client["step"]
        if rank == 0:
            print(f"resumed {step} {time.perf_counter() - t:.3f}", flush=True)
    while step < e.max_steps:
        train_step()
        step += 1
        flag = torch.tensor([stop], dtype=torch.int64)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        if rank == 0:
            print(f"step {step} {time.time():.3f}", flush=True)
        if flag.item():
            t = time.perf_counter()
            engine.save_checkpoint(e.dir, tag=f"step{step}", client_state={"step": step})
            dist.barrier()
            if rank == 0:
                print(f"saved {time.perf_counter() - t:.3f}", flush=True)
            dist.destroy_process_group()
            sys.exit(143)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
