"""Every option of ``train``, ``predict``, ``evaluate`` and ``measure``, one at a time, given odd
values on top of a good command: the CLI either runs (exit 0) or refuses (exit 2 with argparse's
usage or one ``napari-wss: error:`` line) — never a traceback, never another status, and never a
change to its input files. (A run of this over 968 values found ``predict --device gpu0`` escaping
as torch's traceback.)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from napari_wss import cli

pytestmark = pytest.mark.usefixtures("one_thread")

ODD = ["-1", "0", "nan", "abc", "", "RV=5:1", "/nonexistent/f.nii.gz"]
SKIP = {"help", "verbose", "out", "overwrite", "progress"}  # the output is the command's, not an odd value
TINY = ["--steps", "2", "--net-size", "32", "--width", "4", "--batch-size", "2", "--device", "cpu"]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cli_options")
    assert cli.main(["make-samples", str(root / "s")]) == 0
    phantom = root / "s" / "phantom"
    f = {
        "dir": root,
        "image": phantom / "phantom.nii.gz",
        "scribbles": phantom / "phantom_scribble.nii.gz",
        "gt": phantom / "phantom_gt.nii.gz",
        "model": root / "m0.pt",
        "pred": root / "p0.nii.gz",
    }
    train = ["train", "--image", str(f["image"]), "--scribbles", str(f["scribbles"]), "--cardiac-sizes", *TINY]
    assert cli.main([*train, "--out", str(f["model"])]) == 0
    assert cli.main(["predict", "--model", str(f["model"]), "--image", str(f["image"]), "--out", str(f["pred"])]) == 0
    return f


def _good(command: str, f: dict[str, Path]) -> list[str]:
    if command == "train":
        good = ["train", "--image", str(f["image"]), "--scribbles", str(f["scribbles"]), "--cardiac-sizes", *TINY]
        return [*good, "--out", str(f["dir"] / "m.pt")]
    if command == "predict":
        out = str(f["dir"] / "p.nii.gz")
        return ["predict", "--model", str(f["model"]), "--image", str(f["image"]), "--out", out, "--overwrite"]
    if command == "evaluate":
        return ["evaluate", "--pred", str(f["pred"]), "--ref", str(f["gt"])]
    return ["measure", str(f["pred"])]


def _options(command: str) -> list[argparse.Action]:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return [a for a in sub.choices[command]._actions if a.option_strings and a.dest not in SKIP]


@pytest.mark.parametrize("command", ["train", "predict", "evaluate", "measure"])
def test_every_option_with_odd_values_runs_or_refuses_in_one_line(command: str, files, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    ours = {files["image"], files["scribbles"], files["gt"], files["model"], files["pred"]}
    inputs = {p: p.read_bytes() for p in ours}
    (files["dir"] / command).mkdir()
    monkeypatch.chdir(files["dir"] / command)  # where an odd value taken as an output file name lands
    tried, escaped = 0, []
    for action in _options(command):
        flag = action.option_strings[-1]
        for extra in [[flag]] if action.nargs == 0 else [[flag, v] for v in ODD]:
            code = cli.main([*_good(command, files), *extra])
            _out, err = capsys.readouterr()
            lines = err.strip().splitlines()
            one_line = code == 2 and len(lines) == 1 and lines[0].startswith("napari-wss: error: ")
            usage = code == 2 and "usage:" in err
            if "Traceback" in err or not (code == 0 or one_line or usage):
                escaped.append((extra, code, err[-300:]))
            tried += 1
    assert tried > 20 and not escaped, escaped
    changed = [p.name for p, data in inputs.items() if p.read_bytes() != data]
    assert not changed, changed
