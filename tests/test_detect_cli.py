"""The command lines on tiny runs: train a few iterations into tmp_path, then detect on an image."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ssd_edu.checkpoint import load_checkpoint
from ssd_edu.cli import detect
from ssd_edu.cli import train as train_cli
from ssd_edu.data import SHAPE_CLASSES

ROOT = Path(__file__).resolve().parent.parent


pytestmark = pytest.mark.usefixtures("one_thread", "quick_shapes_start")  # tests/conftest.py


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """``python -m ssd_edu.train`` for 3 iterations (the default small model on shapes)."""
    out = tmp_path_factory.mktemp("run")
    torch.set_num_threads(1)
    rc = train_cli.main(
        [
            "--iters",
            "3",
            "--batch-size",
            "4",
            "--train-size",
            "8",
            "--val-size",
            "4",
            "--out-dir",
            str(out),
            "--no-progress",
        ]
    )
    assert rc == 0
    return out / "checkpoint.pt"


def test_train_cli_writes_checkpoint_and_log(trained, capsys):
    state = load_checkpoint(trained)
    assert state["iteration"] == 3
    assert state["model_spec"]["name"] == "ssd_small"
    assert state["model_spec"]["class_names"] == list(SHAPE_CLASSES)
    assert state["train_config"]["batch_size"] == 4
    log = (trained.parent / "log.csv").read_text().splitlines()
    assert log[0].startswith("iteration,loss,loc_loss,conf_loss,lr")
    assert log[-1].startswith("3,") and not log[-1].endswith(",")  # mAP at the end


def test_train_cli_prints_map(tmp_path, capsys):
    rc = train_cli.main(
        [
            "--iters",
            "1",
            "--batch-size",
            "4",
            "--train-size",
            "4",
            "--val-size",
            "2",
            "--out-dir",
            str(tmp_path),
            "--no-progress",
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "VOC07 mAP on 2 held-out images:" in out
    assert "rectangle" in out and "checkpoint:" in out


def test_detect_draws_on_user_images(trained, tmp_path, capsys):
    rng = np.random.default_rng(0)
    photo = tmp_path / "photo.png"
    Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)).save(photo)
    jpeg = tmp_path / "grey.jpg"
    Image.new("L", (30, 30), 128).save(jpeg)  # greyscale: converted to RGB on the way in
    out = tmp_path / "drawn"
    rc = detect.main([str(trained), str(photo), str(jpeg), "--out", str(out), "--score", "0.0"])
    assert rc == 0
    assert sorted(p.name for p in out.iterdir()) == ["grey_detections.png", "photo_detections.png"]
    drawn = Image.open(out / "photo_detections.png")
    assert drawn.width > 0 and drawn.height > 0
    printed = capsys.readouterr().out
    assert "photo.png:" in printed and "detection(s)" in printed


def test_detect_reports_missing_images_and_does_the_rest(trained, tmp_path, capsys):
    good = tmp_path / "good.png"
    Image.new("RGB", (8, 8)).save(good)
    out = tmp_path / "drawn"
    rc = detect.main([str(trained), str(tmp_path / "missing.jpg"), str(good), "--out", str(out)])
    assert rc == 1  # something failed
    err = capsys.readouterr().err
    assert "missing.jpg: no such image file" in err and "1 of 2 image(s)" in err
    assert sorted(p.name for p in out.iterdir()) == ["good_detections.png"]


def test_detect_rejects_bad_score(trained, tmp_path, capsys):
    image = tmp_path / "a.png"
    Image.new("RGB", (8, 8)).save(image)
    assert detect.main([str(trained), str(image), "--out", str(tmp_path), "--score", "1.5"]) == 2
    assert "--score must lie in [0, 1)" in capsys.readouterr().err
    assert detect.main([str(trained), str(image), "--out", str(tmp_path), "--top-k", "0"]) == 2
    assert "--top-k must be at least 1, got 0" in capsys.readouterr().err


def test_detect_missing_checkpoint(tmp_path, capsys):
    image = tmp_path / "a.png"
    Image.new("RGB", (8, 8)).save(image)
    assert detect.main([str(tmp_path / "nope.pt"), str(image), "--out", str(tmp_path)]) == 2
    assert "nope.pt" in capsys.readouterr().err


def test_module_runs_as_a_script():
    # `python -m ssd_edu.train --help`; the console scripts ssd-edu-train and ssd-edu-detect call
    # the same main functions that the other tests call in-process
    proc = subprocess.run(
        [sys.executable, "-m", "ssd_edu.train", "--help"], capture_output=True, text=True, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr
    assert "--voc-root" in proc.stdout and "--demo" in proc.stdout


def test_voc_cli_rejects_missing_root(tmp_path, capsys):
    assert train_cli.main(["--voc-root", str(tmp_path / "VOCdevkit")]) == 2
    assert "is not a folder" in capsys.readouterr().err
