"""Data-parallel scaling on the CPU: one process against N processes, same global batch.

Both runs use the real training generator on the same synthetic slices (four classes, size and
centroid log-barrier bounds) and the same total number of CPU threads: one process with
``--threads`` threads and global batch B, then ``--nproc`` processes (gloo, DistributedDataParallel,
``--threads / --nproc`` threads each) with B / nproc slices each. The figure is global training
slices per second over the steps after the warm-up; the ratio is the multi-process speed-up.
One process on one thread is measured too, as the per-core reference (ideal N-process speed-up
over it: N). The runs alternate ``--repeats`` times and the best of each is kept, since a busy
shared machine only ever makes a run slower.

    python benchmarks/distributed_scaling.py                      # 1×2 threads vs 2×1 thread
    python benchmarks/distributed_scaling.py --batch 16 --size 128 --width 16

Single-GPU throughput comes from benchmarks/throughput.py. Prints JSON lines and a summary.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.multiprocessing as mp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import synthetic

from napari_wss import distributed
from napari_wss.config import TrainConfig
from napari_wss.training import TrainState, train

NAMES = ("background", "RV", "myocardium", "LV")


def _config(args: argparse.Namespace, batch: int) -> TrainConfig:
    return TrainConfig(
        mode="constrained",
        penalty="log-barrier",
        steps=args.warmup + args.steps,
        batch_size=batch,
        width=args.width,
        depth=args.depth,
        size=args.size,
        device="cpu",
        amp=not args.no_amp,
        preview_every=0,
        size_weight=1.0,
        centroid_weight=10.0,
    )


def _timed(gen, warmup: int, before_clock=None) -> float:  # type: ignore[no-untyped-def]
    """Drain ``gen``; seconds from the end of step ``warmup`` to the end (each step syncs the host)."""
    t0 = time.perf_counter()
    for event in gen:
        if event.step == warmup:
            if before_clock is not None:
                before_clock()
            t0 = time.perf_counter()
    return time.perf_counter() - t0


def single(args: argparse.Namespace, threads: int) -> dict:
    torch.set_num_threads(threads)
    cfg = _config(args, args.batch)
    data = synthetic(max(4 * args.batch, 64), args.size)
    state = TrainState.create(cfg, NAMES)
    elapsed = _timed(train(data, cfg, state=state), args.warmup)
    return _row(args, 1, threads, args.batch, elapsed)


def _worker(rank: int, port: int, args: argparse.Namespace, out: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(args.nproc),
    )
    threads = max(1, args.threads // args.nproc)
    torch.set_num_threads(threads)
    per_rank = args.batch // args.nproc
    cfg = _config(args, per_rank)
    data = synthetic(max(4 * args.batch, 64), args.size)
    with distributed.session("cpu", timeout_s=300) as ctx:
        state = TrainState.create(cfg, NAMES)
        elapsed = _timed(train(data, cfg, state=state, **ctx.train_kwargs()), args.warmup, ctx.barrier)
        if ctx.is_main:
            Path(out).write_text(json.dumps(_row(args, args.nproc, threads, per_rank, elapsed)))


def multi(args: argparse.Namespace) -> dict:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "rank0.json")
        mp.start_processes(_worker, args=(port, args, out), nprocs=args.nproc, start_method="spawn")
        return json.loads(Path(out).read_text())  # type: ignore[no-any-return]


def _row(args: argparse.Namespace, procs: int, threads: int, per_rank: int, elapsed: float) -> dict:
    return {
        "processes": procs,
        "threads_each": threads,
        "batch_each": per_rank,
        "global_batch": procs * per_rank,
        "size": args.size,
        "width": args.width,
        "steps": args.steps,
        "step_ms": round(1000 * elapsed / args.steps, 1),
        "slices_per_s": round(args.steps * procs * per_rank / elapsed, 2),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nproc", type=int, default=2, help="processes of the distributed run (default 2)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 2, help="CPU threads in all (default: all)")
    p.add_argument("--batch", type=int, default=8, help="global batch (default 8)")
    p.add_argument("--size", type=int, default=64, help="slice side (default 64)")
    p.add_argument("--width", type=int, default=8, help="U-Net width (default 8)")
    p.add_argument("--depth", type=int, default=3, help="U-Net depth (default 3)")
    p.add_argument("--steps", type=int, default=20, help="timed steps (default 20)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    p.add_argument("--no-amp", action="store_true", help="fp32 even where bf16 is fast")
    p.add_argument("--repeats", type=int, default=3, help="alternate runs of each; the best is kept (default 3)")
    args = p.parse_args()
    if args.batch % args.nproc:
        p.error(f"--batch {args.batch} must be a multiple of --nproc {args.nproc}")
    machine = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "torch": torch.__version__}
    print(json.dumps({"machine": machine}), flush=True)
    ones, manys, refs = [], [], []
    for _ in range(args.repeats):
        ones.append(single(args, args.threads))
        print(json.dumps(ones[-1]), flush=True)
        manys.append(multi(args))
        print(json.dumps(manys[-1]), flush=True)
        refs.append(single(args, 1))
        print(json.dumps(refs[-1]), flush=True)
    one = max(ones, key=lambda r: r["slices_per_s"])
    many = max(manys, key=lambda r: r["slices_per_s"])
    ref = max(refs, key=lambda r: r["slices_per_s"])
    ratio = many["slices_per_s"] / one["slices_per_s"]
    print(
        f"\n1 process x {one['threads_each']} threads: {one['slices_per_s']:.1f} slices/s | "
        f"{many['processes']} processes x {many['threads_each']} thread(s): {many['slices_per_s']:.1f} slices/s | "
        f"ratio {ratio:.2f} (global batch {args.batch}, {args.size}x{args.size}, width {args.width}, "
        f"best of {args.repeats})\n"
        f"1 process x 1 thread: {ref['slices_per_s']:.1f} slices/s; {many['processes']} processes reach "
        f"{many['slices_per_s'] / ref['slices_per_s']:.2f}x of it (ideal {many['processes']})"
    )


if __name__ == "__main__":
    main()
