"""Training throughput of the engine against the seed's pipeline, on the same device in one run.

Both train the same network family at width 32 on 256 × 256 slices with four classes. The
baseline (../shared/bench/seed_baseline.py, run as a subprocess) steps one slice at a time in
fp32 with a per-scalar log-barrier; the engine runs its real training generator: batched,
bf16 autocast + channels_last where the device is fast at it, the fused vectorised penalties,
batches drawn and augmented on the device. Also timed: the constraint losses alone (4 classes ×
size + centroid, log-barrier, batch 32, forward + backward) vectorised vs one scalar at a time.

    python benchmarks/throughput.py --device cuda --batch 64 --steps 40
    python benchmarks/throughput.py --device cpu --batch 8 --steps 4 --baseline-steps 3
    python benchmarks/throughput.py --device cpu --batch 4 --steps 8 --baseline-steps 3 --roofline

Prints JSON lines and a summary table.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from napari_wss.config import Penalty, TrainConfig
from napari_wss.data import SliceDataset
from napari_wss.losses import CentroidConstraint, SizeConstraint, soft_centroid, soft_size
from napari_wss.training import TrainState, bf16_fast, train

HERE = Path(__file__).resolve().parent
BASELINES = [HERE.parents[1] / "shared/bench/seed_baseline.py", HERE.parent / ".carry/seed_baseline.py"]


def synthetic(n: int, size: int, k: int = 4, seed: int = 0) -> SliceDataset:
    """Slices with K-1 discs, their masks, small scribbles and ±10 % size / ±5 px centroid bounds."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    images = rng.random((n, size, size), dtype=np.float32) * 0.2
    labels = np.zeros((n, size, size), dtype=np.uint8)
    scribbles = np.zeros((n, size, size), dtype=np.uint8)
    sizes = np.full((n, k, 2), np.nan, dtype=np.float32)
    cents = np.full((n, k, 2, 2), np.nan, dtype=np.float32)
    for i in range(n):
        scribbles[i, :4, :] = 1
        for c in range(1, k):
            cy, cx = rng.integers(size // 4, 3 * size // 4, 2)
            r = size // 10 + c * size // 40
            disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
            labels[i][disc] = c
            images[i][disc] += 0.2 * c
            scribbles[i][(yy - cy) ** 2 + (xx - cx) ** 2 <= 4] = c + 1
            area = math.pi * r * r
            sizes[i, c] = [0.9 * area, 1.1 * area]
            cents[i, c] = [[cy - 5, cy + 5], [cx - 5, cx + 5]]
    return SliceDataset(images, scribbles, labels, sizes, cents)


def engine(
    device: str, batch: int, steps: int, warmup: int, size: int, compile_: bool = False, amp: bool = True
) -> dict:
    data = synthetic(max(2 * batch, 64), size)
    cfg = TrainConfig(
        mode="constrained",
        penalty="log-barrier",
        steps=warmup + steps,
        batch_size=batch,
        width=32,
        size=size,
        device=device,
        preview_every=0,
        compile=compile_,
        amp=amp,
        size_weight=1.0,
        centroid_weight=10.0,
    )
    state = TrainState.create(cfg, ("background", "RV", "myocardium", "LV"))
    dev = torch.device(device)
    t_start = t_end = 0.0
    gpu_share = None
    for event in train(data, cfg, state=state):
        if event.step in (warmup, warmup + steps):
            if dev.type == "cuda":
                torch.cuda.synchronize()
            if event.step == warmup:
                t_start = time.perf_counter()
            else:
                t_end = time.perf_counter()
    # Steps only: after the last one train() re-estimates the batch-norm statistics over the data,
    # which is not a training step (on a 2-core CPU it added a third to six steps of batch 4).
    elapsed = t_end - t_start
    if dev.type == "cuda":
        gpu_share = _gpu_share(cfg, data, batch)
    return {
        "pipeline": "napari-wss" + (" +compile" if compile_ else "") + ("" if amp else " fp32"),
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "batch": batch,
        "size": size,
        "params": sum(p.numel() for p in state.model.parameters()),
        "steps": steps,
        "step_ms": round(1000 * elapsed / steps, 2),
        "slices_per_s": round(steps * batch / elapsed, 2),
        "gpu_busy_share": gpu_share,
    }


def _gpu_share(cfg: TrainConfig, data: SliceDataset, batch: int, steps: int = 8) -> float:
    """Fraction of wall time the GPU spends in kernels during training steps (torch.profiler)."""
    from torch.profiler import ProfilerActivity, profile

    state = TrainState.create(cfg.with_(steps=steps + 3), ("background", "RV", "myocardium", "LV"))
    gen = train(data, cfg.with_(steps=steps + 3), state=state)
    for _ in range(3):
        next(gen)
    with profile(activities=[ProfilerActivity.CUDA, ProfilerActivity.CPU]) as prof:
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(steps):
            next(gen)
        torch.cuda.synchronize()
        wall = time.perf_counter() - t0
    gen.close()
    from torch.autograd import DeviceType

    busy_us = 0.0
    for e in prof.events():  # kernel events; one stream, so they do not overlap
        if getattr(e, "device_type", None) == DeviceType.CUDA:
            busy_us += getattr(e, "device_time", None) or getattr(e, "cuda_time", 0.0) or 0.0
    return round(min(1.0, busy_us / 1e6 / wall), 3)


def baseline(device: str, steps: int, size: int) -> dict:
    script = next((p for p in BASELINES if p.is_file()), None)
    if script is None:
        return {"pipeline": "seed-baseline", "error": "seed_baseline.py not found"}
    out = subprocess.run(
        [sys.executable, str(script), "--device", device, "--steps", str(steps), "--size", str(size), "--barrier"],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def constraint_cost(device: str, batch: int = 32, size: int = 256, repeats: int = 20) -> dict:
    """Size + centroid log-barrier for 4 classes: vectorised vs one scalar at a time (the seed's way)."""
    dev = torch.device(device)
    g = torch.Generator(device="cpu").manual_seed(0)
    logits = torch.randn(batch, 4, size, size, generator=g).to(dev).requires_grad_()
    sizes = torch.rand(batch, 4, 2, generator=g).sort(-1).values.to(dev) * size * size / 4
    cents = torch.rand(batch, 4, 2, 2, generator=g).sort(-1).values.to(dev) * size
    size_c, cent_c = SizeConstraint(Penalty.LOG_BARRIER, 1.0), CentroidConstraint(Penalty.LOG_BARRIER, 1.0)

    def vectorised() -> None:
        p = torch.softmax(logits, 1)
        (size_c(p, sizes, 5.0) + cent_c(p, cents, 5.0)).backward()

    def per_scalar() -> None:
        p = torch.softmax(logits, 1)
        s, c = soft_size(p), soft_centroid(p)
        zs = [
            *(sizes[..., 0] - s).flatten(),
            *(s - sizes[..., 1]).flatten(),
            *(cents[..., 0] - c).flatten(),
            *(c - cents[..., 1]).flatten(),
        ]
        total = 0.0
        t = 5.0
        for z in zs:  # a host synchronisation per scalar
            total = total + (-torch.log(-z) / t if z <= -1 / t**2 else t * z - math.log(1 / t**2) / t + 1 / t)
        (total / (size * size)).backward()

    res = {}
    for name, fn in (("vectorised_ms", vectorised), ("per_scalar_ms", per_scalar)):
        fn()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(repeats):
            fn()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        res[name] = round(1000 * (time.perf_counter() - t0) / repeats, 3)
    res["speedup"] = round(res["per_scalar_ms"] / res["vectorised_ms"], 1)
    return {"what": "constraints 4 classes x (size+centroid), log-barrier, fwd+bwd", "batch": batch, **res}


def roofline(device: str, size: int) -> dict:
    """What the device's arithmetic allows: the FLOPs of one training slice of the width-32 network
    (torch's flop counter, forward + backward as autograd runs them) and the rate of a large square
    matmul in fp32 and bf16, the fastest a dense kernel runs there. A pipeline's GFLOP/s over that
    rate is its share of the roof; the best ratio any pipeline of this network can reach over the
    baseline is the bf16 rate over the baseline's achieved GFLOP/s."""
    from torch.utils.flop_counter import FlopCounterMode

    from napari_wss.models import ResidualUNet

    dev = torch.device(device)
    net = ResidualUNet(1, 4, width=32).to(dev)
    x = torch.randn(1, 1, size, size, device=dev)
    with FlopCounterMode(display=False) as counter:
        net(x).mean().backward()
    out = {"train_gflop_per_slice": round(counter.get_total_flops() / 1e9, 2)}
    n = 8192 if dev.type == "cuda" else 4096
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a, b = torch.randn(n, n, device=dev, dtype=dtype), torch.randn(n, n, device=dev, dtype=dtype)
        a @ b  # oneDNN / cuBLAS pick their kernels on the first call
        repeats = 20 if dev.type == "cuda" else 5
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(repeats):
            a @ b
        if dev.type == "cuda":
            torch.cuda.synchronize()
        out[f"matmul_{name}_gflops"] = round(2 * n**3 * repeats / (time.perf_counter() - t0) / 1e9, 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--baseline-steps", type=int, default=30)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--compile", action="store_true", help="also time torch.compile (CUDA)")
    ap.add_argument("--skip-constraints", action="store_true")
    ap.add_argument("--fp32-too", action="store_true", help="also time the engine with bf16 autocast off")
    ap.add_argument(
        "--roofline",
        action="store_true",
        help="also count the FLOPs of a step and time a large matmul: share of the roof",
    )
    args = ap.parse_args()
    rows = [baseline(args.device, args.baseline_steps, args.size)]
    print(json.dumps(rows[-1]), flush=True)
    rows.append(engine(args.device, args.batch, args.steps, args.warmup, args.size))
    print(json.dumps(rows[-1]), flush=True)
    if args.fp32_too:
        rows.append(engine(args.device, args.batch, args.steps, args.warmup, args.size, amp=False))
        print(json.dumps(rows[-1]), flush=True)
    if not args.skip_constraints:
        print(json.dumps(constraint_cost(args.device)), flush=True)
    if args.compile:  # last: compiling takes a while and may fail on a machine without a compiler
        try:
            rows.append(engine(args.device, args.batch, args.steps, args.warmup, args.size, compile_=True))
            print(json.dumps(rows[-1]), flush=True)
        except Exception as exc:  # report and keep the figures above
            print(json.dumps({"pipeline": "napari-wss +compile", "error": f"{type(exc).__name__}: {exc}"[:300]}))
    roof = roofline(args.device, args.size) if args.roofline else None
    if roof is not None:
        print(json.dumps(roof), flush=True)
    base = rows[0].get("slices_per_s")
    for r in rows[1:]:
        if base:
            print(
                f"{r['pipeline']}: {r['slices_per_s']} slices/s vs baseline {base} -> {r['slices_per_s'] / base:.1f}x"
            )
    if roof is not None and base:
        gflop = roof["train_gflop_per_slice"]
        engine_bf16 = bf16_fast(torch.device(args.device))  # else the engine runs fp32 too
        for r in rows:
            if "slices_per_s" not in r:
                continue
            fp32 = r["pipeline"].startswith("seed") or r["pipeline"].endswith("fp32") or not engine_bf16
            kind = "fp32" if fp32 else "bf16"
            rate = roof[f"matmul_{kind}_gflops"]
            achieved = r["slices_per_s"] * gflop
            print(
                f"{r['pipeline']}: {achieved:.0f} GFLOP/s = {100 * achieved / rate:.0f} % "
                f"of a {kind} matmul's {rate:.0f}"
            )
        print(
            f"ceiling: the bf16 matmul's rate over the baseline's achieved GFLOP/s -> "
            f"{roof['matmul_bf16_gflops'] / (base * gflop):.1f}x (no pipeline of this network in bf16 can pass it)"
        )


if __name__ == "__main__":
    main()
