"""Data-parallel training on the CPU with gloo: two processes behave like one, fail together, and
a run through torchrun and the CLI writes one checkpoint that loads anywhere.

Workers are started with ``torch.multiprocessing`` (spawn) or, for the CLI, with
``python -m torch.distributed.run``; every test bounds its wait, so a hang fails instead of
blocking the suite.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from napari_wss import distributed
from napari_wss.config import TrainConfig
from napari_wss.data import Batch, SliceDataset, bounds_from_labels, prepare_volume
from napari_wss.errors import InputError
from napari_wss.models.unet import build_model
from napari_wss.toy import cardiac_phantom
from napari_wss.training import Objective, TrainingError, load_checkpoint, train

WAIT_S = 60.0
K = 4
NAMES = ("background", "RV", "myocardium", "LV")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _spawn(fn: Callable[..., None], *args: Any, nprocs: int = 2) -> None:
    """Run ``fn(rank, port, *args)`` in ``nprocs`` fresh processes; fail after WAIT_S, never hang."""
    ctx = mp.start_processes(fn, args=(_free_port(), *args), nprocs=nprocs, join=False, start_method="spawn")
    deadline = time.monotonic() + WAIT_S
    try:
        while not ctx.join(timeout=1.0):
            if time.monotonic() > deadline:
                pytest.fail(f"the {nprocs} worker processes did not finish within {WAIT_S:g} s (a hang)")
    finally:
        for p in ctx.processes:
            if p.is_alive():
                p.kill()


def _torchrun_env(rank: int, port: int, world: int = 2) -> None:
    """What torchrun would put in a worker's environment."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world)
    )
    torch.set_num_threads(1)


def _phantom_data(n: int = 4, size: int = 32) -> SliceDataset:
    ph = cardiac_phantom(n_slices=n, size=size, seed=0)
    sizes, cents = bounds_from_labels(ph.labels, K, margin=0.1)
    ds, _ = prepare_volume(
        ph.image,
        num_classes=K,
        size=size,
        scribbles=ph.scribbles,
        labels=ph.labels,
        size_bounds=sizes,
        centroid_bounds=cents,
    )
    return ds


# --------------------------------------------------------------------------------------------
# torchrun's environment


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"WORLD_SIZE": "1", "RANK": "0", "LOCAL_RANK": "0"}, None),
        ({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"}, distributed.Launch(3, 4, 1)),
    ],
)
def test_launch_is_read_from_torchruns_environment(env: dict[str, str], expected: object) -> None:
    assert distributed.launched(env) == expected


@pytest.mark.parametrize(
    "env", [{"WORLD_SIZE": "two", "RANK": "0"}, {"WORLD_SIZE": "2", "RANK": "2", "LOCAL_RANK": "0"}]
)
def test_bad_launch_environment_is_one_message(env: dict[str, str]) -> None:
    with pytest.raises(InputError, match="torchrun's environment"):
        distributed.launched(env)


def test_session_refuses_a_plain_start_and_sync_bn_on_the_cpu() -> None:
    with pytest.raises(InputError, match="started by torchrun"), distributed.session("cpu", launch=None):
        pass
    with (
        pytest.raises(InputError, match="--sync-bn needs CUDA"),
        distributed.session("cpu", sync_bn=True, launch=distributed.Launch(0, 2, 0)),
    ):
        pass


def test_context_keeps_a_device_name_that_works_on_any_machine() -> None:
    ctx = distributed.DistContext(distributed.Launch(1, 2, 1), torch.device("cpu"), "gloo")
    on_cpu_only = distributed.resolve_device("auto").type == "cpu"
    assert ctx.config_device("auto") == ("auto" if on_cpu_only else "cpu")
    assert ctx.config_device("cpu") == "cpu"
    kwargs = ctx.train_kwargs()
    assert not ctx.is_main and kwargs["shard"] == (1, 2) and kwargs["is_main"] is False


_LEAVE_SCRIPT = """
import gc, os, sys, weakref
import torch
from napari_wss import distributed
from napari_wss.models.unet import build_model

gc.disable()  # no collection by chance: only the session's own may free the wrapper
os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=sys.argv[1])
with distributed.session("cpu", timeout_s=60, launch=distributed.Launch(0, 1, 0)) as ctx:
    wrapper = ctx.wrap(build_model(4, width=4, depth=2))
    wrapper(torch.zeros(2, 1, 16, 16)).sum().backward()
    ref = weakref.ref(wrapper)
    del wrapper
    print("alive in the block:", ref() is not None)
print("alive after:", ref() is not None)
names = [open(f"/proc/self/task/{t}/comm").read().strip() for t in os.listdir("/proc/self/task")]
print("threads after:", sorted(n for n in names if "gloo" in n or "tcpstore" in n))
"""


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads thread names from /proc")
def test_leaving_the_session_ends_the_process_group_and_its_threads(tmp_path: Path) -> None:
    """A fresh interpreter (nothing imported before, as under torchrun): after the block no
    wrapper and no gloo or store thread is left to be torn down at the interpreter's exit, where
    that teardown can abort a finished worker with SIGABRT."""
    script = tmp_path / "leave.py"
    script.write_text(_LEAVE_SCRIPT)
    run = subprocess.run(
        [sys.executable, str(script), str(_free_port())], capture_output=True, text=True, timeout=WAIT_S
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "alive in the block: True" in run.stdout  # DDP's reference cycle keeps a dropped wrapper
    assert "alive after: False" in run.stdout, run.stdout
    assert "threads after: []" in run.stdout, run.stdout


# --------------------------------------------------------------------------------------------
# 1. The loss and its gradients do not depend on how slices are spread over processes


def _priors_objective() -> Objective:
    """Size + centroid log-barrier penalties, the CRF-like term and entropy: every term per image."""
    config = TrainConfig(mode="priors", penalty="log-barrier", crf_weight=0.1, entropy_weight=0.01, size=32)
    return Objective(config)


def _loss_and_grads(model: torch.nn.Module, ds: SliceDataset, rows: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Loss of ``rows`` (float64) and the flattened gradient of the model's parameters."""
    idx = torch.tensor(rows)
    batch = Batch(
        torch.from_numpy(ds.images[rows]).double().unsqueeze(1),
        None,
        None,
        torch.from_numpy(ds.size_bounds[rows]).double(),
        torch.from_numpy(ds.centroid_bounds[rows]).double(),
        idx,
    )
    model.zero_grad()
    loss, _, _ = _priors_objective()(model(batch.images), batch, 5.0)
    loss.backward()
    params = model.module.parameters() if hasattr(model, "module") else model.parameters()
    return loss.detach(), torch.cat([p.grad.flatten() for p in params])


def _fresh_model(weights: dict[str, torch.Tensor] | None = None) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model(K, width=4, depth=2).double()
    if weights is not None:
        model.load_state_dict(weights)
    # Evaluation-mode batch norm: each image's output depends on that image alone. (In training
    # mode, without --sync-bn, batch-norm statistics are per process, as in any DDP run.)
    return model.eval()


def _spread_share(ctx: distributed.DistContext, weights: dict[str, torch.Tensor], out: str) -> None:
    """This process's loss and gradients; the DDP wrapper is dropped on return, inside the session."""
    model = ctx.wrap(_fresh_model(weights))
    loss, grads = _loss_and_grads(model, _phantom_data(), list(range(ctx.rank, 4, 2)))  # DeviceSlices' interleave
    losses = [torch.zeros_like(loss) for _ in range(ctx.world_size)]
    torch.distributed.all_gather(losses, loss)
    torch.save({"losses": torch.stack(losses), "grads": grads}, f"{out}.{ctx.rank}")


def _spread_worker(rank: int, port: int, weights: dict[str, torch.Tensor], out: str) -> None:
    _torchrun_env(rank, port)
    with distributed.session("cpu", timeout_s=WAIT_S) as ctx:
        _spread_share(ctx, weights, out)


def test_two_processes_give_the_loss_and_gradients_of_one(tmp_path: Path) -> None:
    """Mean over 2 slices per process, averaged over 2 processes == mean over the 4 slices."""
    model = _fresh_model()
    loss, grads = _loss_and_grads(model, _phantom_data(), [0, 1, 2, 3])
    assert loss.abs() > 1e-3 and grads.abs().max() > 1e-6  # a non-trivial case

    _spawn(_spread_worker, model.state_dict(), str(tmp_path / "rank"))

    parts = [torch.load(tmp_path / f"rank.{r}") for r in range(2)]
    torch.testing.assert_close(parts[0]["losses"], parts[1]["losses"])
    assert parts[0]["losses"][0] != parts[0]["losses"][1]  # the shares differ...
    torch.testing.assert_close(parts[0]["losses"].mean(), loss, rtol=1e-10, atol=0)  # ...their mean does not
    for part in parts:  # DDP averaged the gradients: every process holds the one-process gradient
        torch.testing.assert_close(part["grads"], grads, rtol=1e-9, atol=1e-12)


# --------------------------------------------------------------------------------------------
# 3. One process failing stops all of them at the same step


def _nan_worker(rank: int, port: int, out: str) -> None:
    _torchrun_env(rank, port)
    if rank == 1:  # the loss of process 1 turns NaN at its second step
        original = Objective.__call__
        calls = [0]

        def poisoned(self: Objective, *args: Any) -> Any:
            calls[0] += 1
            total, parts, probs = original(self, *args)
            return (total * float("nan") if calls[0] == 2 else total), parts, probs

        Objective.__call__ = poisoned  # type: ignore[method-assign]
    ds = _phantom_data()
    config = TrainConfig(mode="constrained", steps=5, batch_size=2, width=4, depth=2, size=32, device="cpu", amp=False)
    checkpoint = Path(f"{out}.pt")
    message = "finished"
    try:
        with distributed.session("cpu", timeout_s=WAIT_S) as ctx:
            gen = train(ds, config, class_names=NAMES, checkpoint=checkpoint, checkpoint_every=1, **ctx.train_kwargs())
            for _ in gen:
                pass
    except TrainingError as exc:
        message = f"TrainingError: {exc}"
    Path(f"{out}.{rank}").write_text(message)


def test_a_failing_process_stops_every_process(tmp_path: Path) -> None:
    _spawn(_nan_worker, str(tmp_path / "run"))

    failed = (tmp_path / "run.1").read_text()
    other = (tmp_path / "run.0").read_text()
    assert failed.startswith("TrainingError: training diverged at step 2"), failed
    assert other.startswith("TrainingError: training stopped at step 2"), other
    assert "another process" in other
    # Only process 0 saved, after step 1, and that file is whole.
    assert load_checkpoint(tmp_path / "run.pt").step == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.0", "run.1", "run.pt"]


# --------------------------------------------------------------------------------------------
# 2. torchrun + the CLI: one checkpoint, loadable for prediction and in the plugin


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """Two CPU processes train the tiny network for 3 steps on the phantom; returns (folder, run)."""
    from napari_wss import io

    root = tmp_path_factory.mktemp("ddp")
    ph = cardiac_phantom(n_slices=4, size=48, seed=0)
    io.write_nifti(root / "image.nii.gz", ph.image, ph.affine)
    io.write_nifti(root / "scribbles.nii.gz", ph.scribbles, ph.affine)
    out = root / "models"
    out.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "napari_wss.cli", "train",
        "--image", str(root / "image.nii.gz"), "--scribbles", str(root / "scribbles.nii.gz"),
        "--classes", ",".join(NAMES), "--size-px", "LV=30:200",
        "--steps", "3", "--batch-size", "2", "--net-size", "32", "--width", "4", "--depth", "2",
        "--device", "cpu", "--no-amp", "--out", str(out / "model.pt"),
    ]  # fmt: skip
    try:
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=WAIT_S, env=env, cwd=root)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"torchrun did not finish within {WAIT_S:g} s: {exc.stderr!r}")
    return root, run


def test_torchrun_cli_run_writes_one_checkpoint_that_predicts_on_one_device(
    ddp_run: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    from napari_wss.io import read_nifti
    from napari_wss.training import predict_volume

    root, run = ddp_run
    assert run.returncode == 0, run.stderr[-3000:]
    # Only process 0 talks and saves: one summary line, one file, no temporary left over.
    assert run.stdout.count("training constrained") == 1, run.stdout
    assert run.stdout.count("saved ") == 1, run.stdout
    assert [p.name for p in (root / "models").iterdir()] == ["model.pt"]
    raw = torch.load(root / "models/model.pt", map_location="cpu", weights_only=True)
    assert not any(k.startswith("module.") for k in raw["model"]), "DDP's wrapper leaked into the weights"

    state = load_checkpoint(root / "models/model.pt", num_classes=K)  # the plugin's own call
    assert state.step == 3 and state.class_names == NAMES and state.config.device == "cpu"
    image = read_nifti(root / "image.nii.gz").data
    labels = predict_volume(state, image, device="cpu")
    assert labels.shape == image.shape and labels.dtype == np.uint8 and labels.max() < K


@pytest.mark.gui
def test_torchrun_checkpoint_loads_and_predicts_in_the_plugin(  # type: ignore[no-untyped-def]
    ddp_run: tuple[Path, subprocess.CompletedProcess[str]], make_napari_viewer, qtbot
) -> None:
    from napari_wss._widget import WssWidget

    root, run = ddp_run
    assert run.returncode == 0, run.stderr[-3000:]
    viewer = make_napari_viewer()
    viewer.open_sample("napari-wss", "phantom")
    widget = WssWidget(viewer)
    state = widget.model.load(root / "models/model.pt")
    assert state is not None and widget.state is state and state.step == 3
    worker = widget.model.predict()
    assert worker is not None
    qtbot.waitUntil(lambda: widget.model.predict_worker is None, timeout=int(WAIT_S * 1000))
    assert widget.prediction_layer is not None
    assert widget.prediction_layer.data.shape == viewer.layers[0].data.shape
