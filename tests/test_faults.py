"""Bad input and faults: nothing lost, nothing misread, every error names what was wrong.

One test (or a few) per probe: the non-finite guard, checkpoints that are not what they claim,
resume semantics, the detect command line's outputs, image files, NaN scores, stale temporary
files, a hanging data worker, XML attacks, bad ground truth in training, nonsense settings.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ssd_edu import checkpoint as ckpt
from ssd_edu.cli import detect as detect_cli
from ssd_edu.cli import train as train_cli
from ssd_edu.config import TrainConfig
from ssd_edu.data import SHAPE_CLASSES, ShapesDataset, VOCDetection, make_toy_voc
from ssd_edu.data import loader as loader_module
from ssd_edu.data.images import ImageReadError, read_image, to_rgb
from ssd_edu.evaluate import evaluate_detections
from ssd_edu.fast import engine as engine_module
from ssd_edu.fast.evaluate import evaluate_detections as fast_evaluate_detections
from ssd_edu.matching import BadGroundTruth
from ssd_edu.model import ssd300, ssd_small
from ssd_edu.nms import nms
from ssd_edu.runlog import read_log
from ssd_edu.step import NonFiniteLossError
from ssd_edu.train import train as train_loop

ROOT = Path(__file__).resolve().parent.parent


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def tiny_model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return ssd_small(len(SHAPE_CLASSES) + 1, width=16)


def cfg(tmp_path, name: str, **overrides) -> TrainConfig:
    base = dict(max_iters=4, batch_size=4, lr=1e-2, lr_steps=(), warmup_iters=0, log_every=1,
                checkpoint_every=1, out_dir=str(tmp_path / name))  # fmt: skip
    return TrainConfig.shapes_cpu(**(base | overrides))


def train(*args, **kwargs):
    kwargs.setdefault("device", "cpu")
    kwargs.setdefault("progress", False)
    return train_loop(*args, **kwargs)


def all_finite(path: Path) -> bool:
    state = ckpt.load_checkpoint(path)
    return all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


class Scaled(ShapesDataset):
    """Shapes whose image ``bad`` is multiplied by ``factor`` from iteration 3 on (epoch 1)."""

    def __init__(self, n: int, bad: int, factor: float, **kw) -> None:
        super().__init__(n, **kw)
        self.bad, self.factor = bad, factor

    def __getitem__(self, index: int):
        image, boxes, labels, difficult = super().__getitem__(index)
        if self.epoch >= 1 and index == self.bad:
            image = image * self.factor
        return image, boxes, labels, difficult


# ---------------------------------------------------------------- 1. the guard covers everything


@pytest.mark.parametrize("deferred", [False, True])
def test_a_huge_learning_rate_stops_before_bad_weights_are_saved(tmp_path, monkeypatch, deferred):
    monkeypatch.setattr(engine_module, "_deferred_guard", lambda device, cfg: deferred)
    run = cfg(tmp_path, f"lr{deferred}", lr=1e9, max_iters=8)
    with pytest.raises(NonFiniteLossError, match="non-finite values in iteration"):
        train(run, tiny_model(), ShapesDataset(8), SHAPE_CLASSES)
    path = tmp_path / f"lr{deferred}" / "checkpoint.pt"
    assert not path.exists() or all_finite(path)  # whatever was saved is good


def test_an_image_scaled_by_1e30_stops_at_the_batch_norm_statistics(tmp_path):
    with pytest.raises(NonFiniteLossError) as info:
        train(cfg(tmp_path, "big", max_iters=8), tiny_model(), Scaled(8, 5, 1e30), SHAPE_CLASSES)
    assert "5" in str(info.value).split("dataset indices [")[1].split("]")[0].split(", ")
    assert all_finite(tmp_path / "big" / "checkpoint.pt")


def test_a_checkpoint_with_nan_is_refused_and_nothing_is_written(tmp_path):
    path = tmp_path / "c.pt"
    with pytest.raises(ValueError, match=r"refusing to write .*\['model'\]\['w'\] holds NaN"):
        ckpt.save_checkpoint(path, {"model": {"w": torch.tensor([1.0, float("nan")])}})
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- 2. checkpoints verified


@pytest.fixture(scope="module")
def good_checkpoint(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("good")
    train(cfg(out, "run", max_iters=2, checkpoint_every=0), tiny_model(), ShapesDataset(8),
          SHAPE_CLASSES)  # fmt: skip
    return out / "run" / "checkpoint.pt"


def test_random_empty_truncated_foreign_and_tampered_files_are_named(tmp_path, good_checkpoint):
    cases = {
        "random.pt": (os.urandom(4096), "cannot be read"),
        "empty.pt": (b"", "is empty"),
        "truncated.pt": (good_checkpoint.read_bytes()[:5000], "cannot be read"),
    }
    for name, (data, message) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ValueError, match=message) as info:
            ckpt.load_checkpoint(tmp_path / name)
        assert name in str(info.value)
    torch.save({"model": {"w": torch.ones(2)}}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="foreign.pt' is not an ssd_edu checkpoint"):
        ckpt.load_checkpoint(tmp_path / "foreign.pt")
    state = torch.load(good_checkpoint, weights_only=True)
    state["model"]["loc_heads.0.bias"][0] += 1.0  # one weight changed behind the checksum
    torch.save(state, tmp_path / "tampered.pt")
    with pytest.raises(ValueError, match="tampered.pt' is corrupted"):
        ckpt.load_checkpoint(tmp_path / "tampered.pt")


def test_a_checkpoint_for_another_model_says_which(tmp_path, good_checkpoint):
    with pytest.raises(ValueError, match=r"holds a ssd_small with 5 classes, 128 px, width 16; it"):
        ckpt.load_weights(ssd300(21), ckpt.load_checkpoint(good_checkpoint), good_checkpoint)
    with pytest.raises(ValueError, match="does not fit this model"):
        train(cfg(tmp_path, "other", max_iters=3), ssd_small(5, width=32), ShapesDataset(8),
              SHAPE_CLASSES, resume=good_checkpoint)  # fmt: skip


def test_detect_with_a_broken_checkpoint_exits_2_naming_it(tmp_path, capsys):
    (tmp_path / "bad.pt").write_bytes(os.urandom(1000))
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    args = [str(tmp_path / "bad.pt"), str(tmp_path / "a.png"), "--out", str(tmp_path / "o")]
    assert detect_cli.main(args) == 2
    assert "bad.pt" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------- 3. resume semantics


def test_resume_with_nothing_left_to_train_is_refused(tmp_path, good_checkpoint, capsys):
    with pytest.raises(ValueError, match="is at iteration 2, and max_iters is 2: there is nothing"):
        train(cfg(tmp_path, "r", max_iters=2), tiny_model(), ShapesDataset(8), SHAPE_CLASSES,
              resume=good_checkpoint)  # fmt: skip
    argv = ["--resume", str(good_checkpoint), "--iters", "1", "--out-dir", str(tmp_path / "c")]
    assert train_cli.main([*argv, "--batch-size", "4", "--no-progress"]) == 2
    assert "nothing left to train" in capsys.readouterr().err


def test_resume_refuses_another_batch_size_or_seed(tmp_path, good_checkpoint):
    for change, message in ((dict(batch_size=2), "batch_size 4"), (dict(seed=7), "seed 0")):
        with pytest.raises(ValueError, match=f"trained with {message}, this run asks for"):
            train(cfg(tmp_path, "r", max_iters=4, **change), tiny_model(), ShapesDataset(8),
                  SHAPE_CLASSES, resume=good_checkpoint)  # fmt: skip


def test_resume_into_another_folder_names_the_real_last_checkpoint(tmp_path, good_checkpoint):
    run = cfg(tmp_path, "elsewhere", max_iters=8, checkpoint_every=0)
    with pytest.raises(NonFiniteLossError) as info:
        train(run, tiny_model(), Scaled(8, 1, float("nan")), SHAPE_CLASSES, resume=good_checkpoint)
    assert f"the last good checkpoint is {good_checkpoint} (iteration 2)" in str(info.value)


def test_resume_after_a_crash_cuts_the_log_back_to_the_checkpoint(tmp_path):
    data = ShapesDataset(8)
    train(cfg(tmp_path, "run", max_iters=2), tiny_model(), data, SHAPE_CLASSES)
    saved = tmp_path / "at2.pt"
    shutil.copy(tmp_path / "run" / "checkpoint.pt", saved)
    train(cfg(tmp_path, "run", max_iters=4), tiny_model(), data, SHAPE_CLASSES, resume=saved)
    # a crash after iteration 4 whose last checkpoint was iteration 2: rows 3 and 4 are logged
    train(cfg(tmp_path, "run", max_iters=4), tiny_model(), data, SHAPE_CLASSES, resume=saved)
    assert [r["iteration"] for r in read_log(tmp_path / "run" / "log.csv")] == [1, 2, 3, 4]


# ---------------------------------------------------------------- 4. detect's outputs


def test_detect_keeps_outputs_apart_skips_non_images_and_clips(tmp_path, good_checkpoint, capsys):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)).save(tmp_path / "a/p.jpg")
    Image.fromarray(rng.integers(0, 255, (30, 20, 3), dtype=np.uint8)).save(tmp_path / "b/p.png")
    (tmp_path / "notes.txt").write_text("not an image")
    out = tmp_path / "out"
    images = [str(tmp_path / "a/p.jpg"), str(tmp_path / "notes.txt"), str(tmp_path / "b/p.png")]
    rc = detect_cli.main([str(good_checkpoint), *images, "--out", str(out), "--score", "0.0"])
    assert rc == 1
    captured = capsys.readouterr()
    assert sorted(p.name for p in out.iterdir()) == ["p_2_detections.png", "p_detections.png"]
    assert "b/p.png -> p_2_detections.png" in captured.out
    assert "notes.txt" in captured.err and "cannot read the image" in captured.err
    for line in captured.out.splitlines():  # "  class 0.123  (x1, y1, x2, y2)" within the image
        if line.startswith("  ") and "(" in line:
            x1, y1, x2, y2 = (float(v) for v in line.split("(")[1].rstrip(")").split(","))
            assert 0 <= x1 <= x2 <= 60 and 0 <= y1 <= y2 <= 40


# ---------------------------------------------------------------- 5. image files


@pytest.fixture
def toy_voc(tmp_path) -> Path:
    make_toy_voc(tmp_path / "VOCdevkit", 6, seed=0)
    return tmp_path / "VOCdevkit"


def test_a_truncated_jpeg_names_file_image_id_and_index(toy_voc):
    data = VOCDetection(toy_voc, image_set="trainval")
    path = data.image_path(1)
    path.write_bytes(path.read_bytes()[:600])
    with pytest.raises(ImageReadError) as info:
        data[1]
    message = str(info.value)
    assert str(path) in message and data.image_ids[1] in message and "dataset index 1" in message


def test_a_decompression_bomb_names_the_file(tmp_path, monkeypatch):
    Image.new("RGB", (200, 200)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 200 x 200 is then "a bomb"
    with pytest.raises(ImageReadError, match="big.png: cannot read the image"):
        read_image(tmp_path / "big.png")


def test_16_bit_and_float_images_are_scaled_not_saturated(tmp_path):
    ramp = (np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16)  # 0 .. 65520
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    grey = np.asarray(read_image(tmp_path / "deep.png"))[..., 0]
    assert grey.min() == 0 and grey.max() == 255 and len(np.unique(grey)) == 256
    assert (grey == 255).mean() < 0.01  # convert("RGB") alone saturates almost all of it
    floats = np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64)
    Image.fromarray(floats, mode="F").save(tmp_path / "f.tiff")
    assert np.asarray(read_image(tmp_path / "f.tiff")).max() == 255
    wide = Image.fromarray(floats * 1000 - 500, mode="F")  # another range: stretched
    values = np.asarray(to_rgb(wide))[..., 0]
    assert values.min() == 0 and values.max() == 255


# ---------------------------------------------------------------- 6. NaN scores


def test_nan_scores_are_refused_by_nms_and_evaluation():
    boxes = torch.tensor([[0.1, 0.1, 0.5, 0.5], [0.1, 0.1, 0.5, 0.5]])
    with pytest.raises(ValueError, match=r"scores\[1\] is NaN"):
        nms(boxes, torch.tensor([0.9, float("nan")]), 0.5)
    dets = [(boxes, torch.tensor([float("nan"), 0.5]), torch.tensor([1, 1]))]
    gts = [(boxes[:1], torch.tensor([1]))]
    for evaluate in (evaluate_detections, fast_evaluate_detections):
        with pytest.raises(ValueError, match=r"detections\[0\] scores\[0\] is NaN"):
            evaluate(dets, gts, ["a"])


# ---------------------------------------------------------------- weak spots


def test_a_killed_write_leaves_the_old_checkpoint_and_the_next_save_cleans_up(tmp_path):
    path = tmp_path / "checkpoint.pt"
    ckpt.save_checkpoint(path, {"iteration": 1, "w": torch.ones(3)})
    writer = (
        "import sys, time, torch; from ssd_edu import checkpoint as c\n"
        "def slow(obj, f):\n    f.write(b'x' * 100000); f.flush(); time.sleep(60)\n"
        "c.torch.save = slow\nc.save_checkpoint(sys.argv[1], {'iteration': 2})\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", writer, str(path)], cwd=ROOT)
    for _ in range(200):  # until the temporary file exists, then kill -9 mid-write
        if list(tmp_path.glob(".checkpoint.pt.*.tmp")):
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert len(list(tmp_path.glob(".checkpoint.pt.*.tmp"))) == 1  # debris of the killed write
    assert ckpt.load_checkpoint(path)["iteration"] == 1  # the old one, intact
    ckpt.save_checkpoint(path, {"iteration": 3})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]


class Hangs(ShapesDataset):
    def __getitem__(self, index: int):
        if index == 2:
            time.sleep(3600)
        return super().__getitem__(index)


def test_a_hanging_worker_is_named_with_its_items(tmp_path, monkeypatch):
    monkeypatch.setattr(loader_module, "WORKER_TIMEOUT", 3.0)
    run = cfg(tmp_path, "hang", max_iters=4, num_workers=1, batch_size=2)
    with pytest.raises(loader_module.LoaderTimeout) as info:
        train(run, tiny_model(), Hangs(4), SHAPE_CLASSES)
    assert "worker 0 took more than 3 s" in str(info.value)
    assert "2" in str(info.value).split("dataset indices [")[1].split("]")[0].split(", ")


def test_an_xml_entity_attack_names_the_file(toy_voc):
    data = VOCDetection(toy_voc, image_set="trainval")
    xml = toy_voc / "VOC2007" / "Annotations" / f"{data.image_ids[0].split('/')[1]}.xml"
    xml.write_text('<?xml version="1.0"?><!DOCTYPE a [<!ENTITY e "boom">]><annotation>&e;'
                   "</annotation>")  # fmt: skip
    with pytest.raises(ValueError, match=rf"{xml.name}: refused to parse \(EntitiesForbidden"):
        data.annotation(0)


class BadBox(ShapesDataset):
    def __getitem__(self, index: int):
        image, boxes, labels, difficult = super().__getitem__(index)
        if index == 3:
            boxes = boxes.clone()
            boxes[0, 2] = boxes[0, 0]  # zero width
        return image, boxes, labels, difficult


def test_a_bad_box_in_training_names_the_dataset_index_and_image_id(tmp_path):
    with pytest.raises(BadGroundTruth, match=r"dataset index 3, image id 'shapes-0-3'"):
        train(cfg(tmp_path, "box", max_iters=2), tiny_model(), BadBox(4), SHAPE_CLASSES)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--lr", "inf"], "lr must be positive and finite, got inf"),
        (["--lr", "0"], "lr must be positive and finite, got 0.0"),
        (["--batch-size", "-4"], "batch_size must be an int at least 1, got -4"),
        (["--iters", "0"], "max_iters must be an int at least 1, got 0"),
        (["--val-size", "0"], "--val-size must be at least 1"),
        (["--threads", "0"], "--threads must be at least 1, got 0"),
    ],
)
def test_nonsense_settings_are_refused_by_name(tmp_path, capsys, argv, message):
    assert train_cli.main([*argv, "--out-dir", str(tmp_path), "--no-progress"]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "checkpoint.pt").exists()
