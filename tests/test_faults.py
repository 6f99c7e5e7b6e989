"""Faults (issue 5): a diverging loss, NaN weights, CUDA out of memory, a process killed while it
saves, and nothing the user owns is written by training, prediction, a stop or an error.

The napari side of these (the widget usable after an OOM, Stop, closing the viewer, pressing Train
twice) is in ``tests/gui/test_faults.py``.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_wss import cli, experiments, io, toy, training
from napari_wss.config import TrainConfig
from napari_wss.data import prepare_volume
from napari_wss.training import Objective, TrainingError, TrainState, load_checkpoint, train

SMALL = {"width": 4, "depth": 2, "size": 32, "batch_size": 2, "preview_every": 0, "device": "cpu", "amp": False}
NAMES = ("background", "RV", "myocardium", "LV")
AFFINE = np.diag([1.5, 1.5, 10.0, 1.0])
TINY = ["--steps", "4", "--net-size", "32", "--width", "4", "--depth", "2", "--batch-size", "2"]
TINY += ["--device", "cpu", "--no-amp", "--no-progress"]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def phantom() -> toy.Phantom:
    return toy.cardiac_phantom(n_slices=3, size=48, seed=0)


def _data(ph: toy.Phantom):  # type: ignore[no-untyped-def]
    ds, _ = prepare_volume(ph.image, num_classes=4, size=32, scribbles=ph.scribbles)
    return ds


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class _NanGradient(torch.autograd.Function):
    """The identity forward; NaN gradients backward (an overflow the loss does not show)."""

    @staticmethod
    def forward(ctx, x):  # type: ignore[no-untyped-def, override]
        return x.clone()

    @staticmethod
    def backward(ctx, grad):  # type: ignore[no-untyped-def, override]
        return grad * float("nan")


def _objective_failing_at(monkeypatch: pytest.MonkeyPatch, call: int, how: str) -> None:
    """From the ``call``-th step on, the loss is NaN / infinite, or its gradients are NaN."""
    real = Objective.__call__
    calls = itertools.count(1)

    def patched(self, logits, batch, t, *rest):  # type: ignore[no-untyped-def]
        total, parts, probs = real(self, logits, batch, t, *rest)
        if next(calls) >= call:
            total = _NanGradient.apply(total) if how == "nan-gradient" else total * float(how)
        return total, parts, probs

    monkeypatch.setattr(Objective, "__call__", patched)


# --------------------------------------------------------------------------------------------
# A diverging loss


@pytest.mark.parametrize("how", ["nan", "inf"])
def test_diverging_loss_stops_and_the_last_good_checkpoint_stays(
    how: str, phantom: toy.Phantom, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _objective_failing_at(monkeypatch, 3, how)
    path = tmp_path / "model.pt"
    gen = train(_data(phantom), TrainConfig(steps=10, **SMALL), class_names=NAMES, checkpoint=path, checkpoint_every=1)
    next(gen), next(gen)
    good = _sha(path)
    with pytest.raises(TrainingError) as info:
        next(gen)
    message = str(info.value)
    assert f"loss became {how}" in message and "learning rate (now 0.001)" in message and "bounds" in message
    assert "\n" not in message
    assert _sha(path) == good
    assert load_checkpoint(path).step == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]


def test_nan_weights_are_never_saved_over_a_good_checkpoint(
    phantom: toy.Phantom, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loss of step 3 is finite but its gradients are not: the weights it leaves are NaN."""
    _objective_failing_at(monkeypatch, 3, "nan-gradient")
    path = tmp_path / "model.pt"
    gen = train(_data(phantom), TrainConfig(steps=10, **SMALL), class_names=NAMES, checkpoint=path, checkpoint_every=1)
    next(gen), next(gen)
    good = _sha(path)
    with pytest.raises(TrainingError, match=r"weights became NaN or infinite by step 3: not saved, so model.pt keeps"):
        next(gen)
    assert _sha(path) == good and load_checkpoint(path).step == 2


def test_cli_divergence_is_one_line_and_keeps_the_previous_model(
    phantom: toy.Phantom, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    image = io.write_nifti(tmp_path / "img.nii.gz", phantom.image.astype(np.float32), AFFINE)
    scribbles = io.write_nifti(tmp_path / "scr.nii.gz", phantom.scribbles, AFFINE)
    model = tmp_path / "model.pt"
    args = ["train", "--image", image, "--scribbles", scribbles, "--out", model, *TINY, "--checkpoint-every", "1"]
    assert cli.main([str(a) for a in args]) == 0
    capsys.readouterr()
    previous = _sha(model)
    inputs = {p: _sha(p) for p in (image, scribbles)}
    _objective_failing_at(monkeypatch, 1, "nan")
    code = cli.main([str(a) for a in [*args, "--resume", model]])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("napari-wss: error: training diverged at step 5")
    assert _sha(model) == previous and load_checkpoint(model).step == 4
    assert {p: _sha(p) for p in inputs} == inputs


# --------------------------------------------------------------------------------------------
# CUDA out of memory (simulated: there is no GPU here)


def test_out_of_memory_releases_memory_and_leaves_a_usable_state(
    phantom: toy.Phantom, monkeypatch: pytest.MonkeyPatch
) -> None:
    released: list[int] = []
    monkeypatch.setattr(training, "release_memory", lambda: released.append(1))
    real = Objective.__call__

    def oom(self, *a, **k):  # type: ignore[no-untyped-def]
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(Objective, "__call__", oom)
    config = TrainConfig(steps=3, **{**SMALL, "batch_size": 8, "width": 6})
    state = TrainState.create(config, NAMES)
    with pytest.raises(TrainingError) as info:
        next(train(_data(phantom), config, state=state))
    message = str(info.value)
    assert "ran out of memory at batch 8, width 6" in message
    assert "lower the batch size (e.g. 4)" in message and "network width" in message and "CPU" in message
    assert released, "GPU memory was not released"
    assert next(state.model.parameters()).device.type == "cpu" and state.step == 0
    # After the user follows the advice the same state trains.
    monkeypatch.setattr(Objective, "__call__", real)
    gen = train(_data(phantom), config.with_(batch_size=4), state=state)
    assert next(gen).step == 1
    gen.close()


# --------------------------------------------------------------------------------------------
# A process killed while it writes a checkpoint

_SAVER = textwrap.dedent(
    """
    import sys
    import torch
    torch.set_num_threads(1)
    from napari_wss.config import TrainConfig
    from napari_wss.training import TrainState, load_checkpoint, save_checkpoint

    path = sys.argv[1]
    try:
        state = load_checkpoint(path)
    except Exception:
        state = TrainState.create(TrainConfig(width=24, depth=4, size=64, device="cpu"), ("a", "b"))
    while True:
        state.step += 1
        with torch.no_grad():
            next(state.model.parameters()).fill_(state.step)  # each file differs
        save_checkpoint(state, path)
        print(state.step, flush=True)
    """
)


def test_killed_while_saving_the_previous_checkpoint_still_loads(tmp_path: Path) -> None:
    script = tmp_path / "saver.py"
    script.write_text(_SAVER)
    path = tmp_path / "model.pt"
    last_saved = 0
    for _round in range(3):
        proc = subprocess.Popen(
            [sys.executable, str(script), str(path)], stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[1]
        )
        try:
            line = proc.stdout.readline()  # type: ignore[union-attr]
            assert line.strip(), "the saver died before its first save"
            last_saved = int(line)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:  # kill once the next save is half written
                temps = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
                if temps and temps[0].stat().st_size > 2**20:
                    break
                time.sleep(0.002)
            else:
                pytest.fail("the next save never started")
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.kill()
            proc.wait(timeout=30)
        rest = proc.stdout.read()  # type: ignore[union-attr]
        proc.stdout.close()  # type: ignore[union-attr]
        last_saved = max([last_saved, *(int(s) for s in rest.split())])
        state = load_checkpoint(path)
        assert state.step == last_saved, "the file is not the last complete save"
        assert float(next(state.model.parameters()).flatten()[0]) == last_saved
        assert any(p.name.endswith(".tmp") for p in tmp_path.iterdir()), "the kill did not land mid-write"
    assert last_saved >= 3


# --------------------------------------------------------------------------------------------
# Nothing lost: the CLI never writes the user's files


def test_cli_train_predict_stop_and_errors_never_touch_the_inputs(
    phantom: toy.Phantom, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    image = io.write_nifti(tmp_path / "case.nii.gz", phantom.image.astype(np.float32), AFFINE)
    scribbles = io.write_nifti(tmp_path / "case_scribble.nii.gz", phantom.scribbles, AFFINE)
    labels = io.write_nifti(tmp_path / "case_gt.nii.gz", phantom.labels, AFFINE)
    inputs = {p: _sha(p) for p in (image, scribbles, labels)}
    model, pred = tmp_path / "model.pt", tmp_path / "pred.nii.gz"
    train_args = [str(a) for a in ["train", "--image", image, "--labels", labels, "--out", model, *TINY]]

    assert cli.main(train_args) == 0  # the _scribble sibling is found and used
    assert cli.main(["predict", "--model", str(model), "--image", str(image), "--out", str(pred)]) == 0
    assert cli.main(["predict", "--model", str(model), "--image", str(image), "--out", str(pred)]) == 2  # exists
    assert cli.main(["predict", "--model", str(model), "--image", str(image), "--out", str(image), "--overwrite"]) == 2

    def interrupted(*_a: object, **_k: object) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(experiments, "run_training", interrupted)
        assert cli.main(train_args) == 130
    _objective_failing_at(monkeypatch, 2, "nan")
    assert cli.main(train_args) == 2
    capsys.readouterr()
    assert {p: _sha(p) for p in inputs} == inputs
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["case.nii.gz", "case_scribble.nii.gz", "case_gt.nii.gz", "model.pt", "pred.nii.gz"]
    )
