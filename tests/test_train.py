"""Tests of ssd_edu.train and ssd_edu.checkpoint: schedule, resume, NaN guard, DDP, atomicity.

The runs are tiny (a 16-channel ssd_small, batches of 4) so the whole file stays quick on a CPU.
"""

from __future__ import annotations

import os
import re
import socket

import pytest
import torch
import torch.multiprocessing as mp

from ssd_edu import checkpoint as ckpt
from ssd_edu import train as train_module
from ssd_edu.data import SHAPE_CLASSES, ShapesDataset
from ssd_edu.fast import engine as engine_module
from ssd_edu.model import ssd_small
from ssd_edu.train import NonFiniteLossError, TrainConfig, lr_factor, read_log


def train(*args, **kwargs):
    """``ssd_edu.train.train`` on the CPU: these tests check CPU claims (bit-identical resume,
    gloo DDP), and train() would otherwise pick a GPU when the machine has one."""
    kwargs.setdefault("device", "cpu")
    return train_module.train(*args, **kwargs)


NUM_CLASSES = len(SHAPE_CLASSES) + 1


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def tiny_model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return ssd_small(NUM_CLASSES, width=16)


def tiny_cfg(tmp_path, name: str, **overrides) -> TrainConfig:
    base = dict(
        max_iters=4,
        batch_size=4,
        lr=1e-2,
        lr_steps=(3,),
        warmup_iters=2,
        log_every=1,
        checkpoint_every=0,
        out_dir=str(tmp_path / name),
    )
    return TrainConfig.shapes_cpu(**(base | overrides))


def same_parameters(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# ------------------------------------------------------------------------------------------------
# configuration and schedule
# ------------------------------------------------------------------------------------------------


def test_defaults_are_the_paper_recipe():
    cfg = TrainConfig()
    assert (cfg.model, cfg.batch_size, cfg.lr, cfg.momentum, cfg.weight_decay) == (
        "ssd300",
        32,
        1e-3,
        0.9,
        5e-4,
    )
    assert cfg.lr_steps == (80_000, 100_000) and cfg.max_iters == 120_000
    assert cfg.iou_threshold == 0.5 and cfg.neg_pos_ratio == 3 and cfg.alpha == 1.0


def test_lr_factor_hand_worked():
    # warm-up over 10 iterations from 0.1, then x0.1 at 20 and again at 30
    cfg = TrainConfig(warmup_iters=10, warmup_factor=0.1, lr_steps=(20, 30), lr_gamma=0.1)
    expected = {0: 0.1, 5: 0.55, 10: 1.0, 19: 1.0, 20: 0.1, 29: 0.1, 30: 0.01, 99: 0.01}
    for it, want in expected.items():
        assert lr_factor(cfg, it) == pytest.approx(want), it


def test_lr_factor_without_warmup():
    cfg = TrainConfig(warmup_iters=0, lr_steps=(2,))
    assert [lr_factor(cfg, i) for i in range(4)] == pytest.approx([1, 1, 0.1, 0.1])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"model": "yolo"}, "model must be"),
        ({"amp": "fp8"}, "amp must be"),
        ({"batch_size": 0}, "batch_size must be an int at least 1, got 0"),
        ({"lr": 0.0}, "lr must be positive"),
        ({"lr_steps": (100, 50)}, r"lr_steps must be increasing iterations, got \(100, 50\)"),
        ({"num_workers": -1}, "num_workers must be an int >= 0"),
        ({"lr": float("inf")}, "lr must be positive and finite, got inf"),
        ({"momentum": 1.0}, r"momentum must be in \[0, 1\), got 1.0"),
        ({"iou_threshold": 0.0}, r"iou_threshold must be in \(0, 1\], got 0.0"),
        ({"warmup_iters": -5}, "warmup_iters must be an int >= 0, got -5"),
    ],
)
def test_bad_config_is_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kwargs)


def test_dataset_smaller_than_a_batch_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="fewer than one batch of 4"):
        train(
            tiny_cfg(tmp_path, "x"), tiny_model(), ShapesDataset(3), SHAPE_CLASSES, progress=False
        )


# ------------------------------------------------------------------------------------------------
# the loop: log, schedule, resume
# ------------------------------------------------------------------------------------------------


def test_log_follows_the_schedule_and_is_written(tmp_path):
    cfg = tiny_cfg(tmp_path, "log")
    result = train(cfg, tiny_model(), ShapesDataset(8), SHAPE_CLASSES, progress=False)
    # the lr logged after iteration i is the one the next step uses: lr * lr_factor(i)
    assert [row["lr"] for row in result.log] == pytest.approx(
        [cfg.lr * lr_factor(cfg, i) for i in range(1, 5)]
    )
    on_disk = read_log(tmp_path / "log" / "log.csv")
    assert [r["iteration"] for r in on_disk] == [1, 2, 3, 4]
    assert on_disk[-1]["loss"] == pytest.approx(result.log[-1]["loss"])
    assert all(r["mAP"] is None for r in on_disk)  # no held-out set given
    assert result.checkpoint == tmp_path / "log" / "checkpoint.pt"


def test_training_reduces_the_loss(tmp_path):
    # the same 4 images over and over: the network must fit them
    cfg = tiny_cfg(tmp_path, "fit", max_iters=25, lr_steps=(), log_every=5)
    result = train(cfg, tiny_model(), ShapesDataset(4), SHAPE_CLASSES, progress=False)
    assert result.log[-1]["loss"] < 0.7 * result.log[0]["loss"]


def test_resume_is_bit_identical(tmp_path):
    # 6 iterations straight == 3, stop, resume, 3 more; with augmentation, crossing epochs
    # (3 batches per epoch, so the resume starts mid-epoch 1) and a learning-rate step at 3
    train_set = ShapesDataset(12, augment=True)
    straight = train(
        tiny_cfg(tmp_path, "a", max_iters=6), tiny_model(), train_set, SHAPE_CLASSES, progress=False
    )
    half = train(
        tiny_cfg(tmp_path, "b", max_iters=4), tiny_model(), train_set, SHAPE_CLASSES, progress=False
    )
    assert not same_parameters(half.model, straight.model)
    resumed = train(
        tiny_cfg(tmp_path, "b", max_iters=6),
        tiny_model(seed=123),  # weights come from the checkpoint, not from here
        train_set,
        SHAPE_CLASSES,
        resume=half.checkpoint,
        progress=False,
    )
    assert resumed.iteration == 6
    assert same_parameters(resumed.model, straight.model)
    assert [r["loss"] for r in resumed.log] == [r["loss"] for r in straight.log[4:]]
    # the resumed run appended to the first half's log
    assert [r["iteration"] for r in read_log(tmp_path / "b" / "log.csv")] == [1, 2, 3, 4, 5, 6]


def test_resume_is_bit_identical_with_deferred_photometric(tmp_path):
    # the batched photometric step is deterministic too: resuming gives the same weights
    from ssd_edu.fast.augment import FastTrainTransform

    train_set = ShapesDataset(8, transform=FastTrainTransform(128, defer_photometric=True))
    straight = train(
        tiny_cfg(tmp_path, "a", max_iters=4), tiny_model(), train_set, SHAPE_CLASSES, progress=False
    )
    half = tiny_cfg(tmp_path, "b", max_iters=2)
    train(half, tiny_model(), train_set, SHAPE_CLASSES, progress=False)
    resumed = train(
        tiny_cfg(tmp_path, "b", max_iters=4),
        tiny_model(seed=123),
        train_set,
        SHAPE_CLASSES,
        resume=tmp_path / "b" / "checkpoint.pt",
        progress=False,
    )
    assert same_parameters(resumed.model, straight.model)
    # evaluation accepts such items too (finishing them the same way)
    result = train_module.evaluate_model(resumed.model, train_set, SHAPE_CLASSES, batch_size=4)
    assert 0.0 <= result.mean_ap <= 1.0


def test_workers_do_not_change_the_result(tmp_path):
    # augmentation is a function of (seed, epoch, index), not of the process that loads an image
    train_set = ShapesDataset(8, augment=True)
    runs = [
        train(
            tiny_cfg(tmp_path, f"w{w}", max_iters=3, num_workers=w),
            tiny_model(),
            train_set,
            SHAPE_CLASSES,
            progress=False,
        )
        for w in (0, 2)
    ]
    assert same_parameters(runs[0].model, runs[1].model)


def test_evaluation_is_logged(tmp_path):
    cfg = tiny_cfg(tmp_path, "eval", max_iters=2, eval_every=1, log_every=2)
    result = train(
        cfg,
        tiny_model(),
        ShapesDataset(4),
        SHAPE_CLASSES,
        val_set=ShapesDataset(4, seed=9),
        progress=False,
    )
    maps = [r["mAP"] for r in result.log]
    assert len(maps) == 2 and all(m is not None and 0.0 <= m <= 1.0 for m in maps)
    assert result.evaluation.class_names == list(SHAPE_CLASSES)


def test_deferred_photometric_items_reach_the_model_finished(tmp_path):
    # FastTrainTransform(defer_photometric=True) hands train() uint8 images and the photometric
    # work; the model must see what the CPU path would have given it (to a few grey levels)
    from ssd_edu.data import IMAGENET_STD
    from ssd_edu.fast.augment import FastTrainTransform

    def first_batch(transform) -> torch.Tensor:
        seen = []
        model = tiny_model()
        model.register_forward_pre_hook(lambda module, args: seen.append(args[0].clone()))
        data = ShapesDataset(8, transform=transform)
        train(tiny_cfg(tmp_path, "defer", max_iters=1), model, data, SHAPE_CLASSES, progress=False)
        return seen[0]

    cpu = first_batch(FastTrainTransform(128))
    deferred = first_batch(FastTrainTransform(128, defer_photometric=True))
    assert deferred.dtype == torch.float32 and deferred.shape == cpu.shape == (4, 3, 128, 128)
    levels = (deferred - cpu).abs() * torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255
    assert levels.max() <= 8.01 and levels.mean() < 0.5


# ------------------------------------------------------------------------------------------------
# the non-finite guard
# ------------------------------------------------------------------------------------------------


class PoisonedShapes(ShapesDataset):
    """Shapes whose image ``bad_index`` turns to NaN from epoch 1 on."""

    def __init__(self, n: int, bad_index: int) -> None:
        super().__init__(n)
        self.bad_index = bad_index

    def __getitem__(self, index: int):
        image, boxes, labels, difficult = super().__getitem__(index)
        if self.epoch >= 1 and index == self.bad_index:
            image = torch.full_like(image, float("nan"))
        return image, boxes, labels, difficult


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    cfg = tiny_cfg(tmp_path, "nan", max_iters=8, checkpoint_every=1)
    # 8 images, batches of 4: epoch 1 is iterations 3 and 4, one of which holds image 5
    with pytest.raises(NonFiniteLossError) as info:
        train(cfg, tiny_model(), PoisonedShapes(8, bad_index=5), SHAPE_CLASSES, progress=False)
    message = str(info.value)
    failed = int(re.search(r"non-finite values in iteration (\d+)", message).group(1))
    assert failed in (3, 4)
    assert "5" in message.split("dataset indices [")[1].split("]")[0].split(", ")
    assert "shapes-0-5" in message  # the image id, as the dataset names it
    state = ckpt.load_checkpoint(tmp_path / "nan" / "checkpoint.pt")
    assert state["iteration"] == failed - 1  # the last good step, nothing after it
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    assert f"(iteration {failed - 1})" in message


def test_deferred_guard_skips_the_bad_step_and_names_it(tmp_path, monkeypatch):
    # the CUDA form of the guard (flag read one iteration late, fused SGD skipping the step on
    # the device), forced on the CPU: the error names the bad iteration, and the weights are
    # exactly those of a clean run stopped just before it, although the loop ran one step on
    monkeypatch.setattr(engine_module, "_deferred_guard", lambda device, cfg: True)
    cfg = tiny_cfg(tmp_path, "deferred", max_iters=8, log_every=100)
    model = tiny_model()
    with pytest.raises(NonFiniteLossError) as info:
        train(cfg, model, PoisonedShapes(8, bad_index=5), SHAPE_CLASSES, progress=False)
    message = str(info.value)
    failed = int(re.search(r"non-finite values in iteration (\d+)", message).group(1))
    assert failed in (3, 4)
    assert "5" in message.split("dataset indices [")[1].split("]")[0].split(", ")
    assert "no checkpoint had been written yet" in message
    clean = tiny_model()
    cfg_clean = tiny_cfg(tmp_path, "clean", max_iters=failed - 1, log_every=100)
    train(cfg_clean, clean, PoisonedShapes(8, bad_index=5), SHAPE_CLASSES, progress=False)
    # the weights, not the batch-norm statistics: forward passes update those in any guard
    for (name, a), (_, b) in zip(model.named_parameters(), clean.named_parameters()):
        assert torch.equal(a, b), name


def test_label_outside_the_model_classes_is_rejected(tmp_path):
    class WrongLabels(ShapesDataset):
        def __getitem__(self, index: int):
            image, boxes, labels, difficult = super().__getitem__(index)
            return image, boxes, torch.full_like(labels, NUM_CLASSES), difficult

    cfg = tiny_cfg(tmp_path, "labels", max_iters=1)
    with pytest.raises(ValueError, match=rf"is {NUM_CLASSES}, but the model has {NUM_CLASSES}"):
        train(cfg, tiny_model(), WrongLabels(4, max_objects=2), SHAPE_CLASSES, progress=False)


# ------------------------------------------------------------------------------------------------
# checkpoints
# ------------------------------------------------------------------------------------------------


def test_failing_write_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    ckpt.save_checkpoint(path, {"iteration": 1, "w": torch.ones(3)})

    def broken_save(obj, f):
        f.write(b"half a checkpoint")  # some bytes reach the disk, then the write fails
        raise OSError("disk full")

    monkeypatch.setattr(ckpt.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        ckpt.save_checkpoint(path, {"iteration": 2, "w": torch.zeros(3)})
    monkeypatch.undo()
    state = ckpt.load_checkpoint(path)
    assert state["iteration"] == 1 and torch.equal(state["w"], torch.ones(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]  # no temp file left


def test_rng_state_round_trip(tmp_path):
    import random

    import numpy as np

    torch.manual_seed(1)
    np.random.seed(2)
    random.seed(3)
    path = ckpt.save_checkpoint(tmp_path / "rng.pt", {"rng": ckpt.rng_state()})
    first = (torch.rand(3), np.random.rand(3), random.random())
    ckpt.set_rng_state(ckpt.load_checkpoint(path)["rng"])
    again = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(first[0], again[0])
    assert np.array_equal(first[1], again[1]) and first[2] == again[2]


def test_checkpoint_rebuilds_the_model(tmp_path):
    cfg = tiny_cfg(tmp_path, "m", max_iters=1)
    result = train(cfg, tiny_model(), ShapesDataset(4), SHAPE_CLASSES, progress=False)
    model, spec = ckpt.load_model(result.checkpoint)
    assert spec["class_names"] == list(SHAPE_CLASSES) and spec["num_classes"] == NUM_CLASSES
    assert model.cfg == result.model.cfg
    x = torch.randn(2, 3, 128, 128)
    result.model.eval()
    for got, want in zip(model(x), result.model(x)):
        torch.testing.assert_close(got, want)


def test_load_missing_checkpoint_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        ckpt.load_checkpoint(tmp_path / "nope.pt")


def test_model_spec_checks_class_names():
    with pytest.raises(ValueError, match="num_classes - 1 = 4 object classes"):
        ckpt.model_spec("ssd_small", tiny_model(), ["a", "b"])


# ------------------------------------------------------------------------------------------------
# DistributedDataParallel on the CPU: two gloo processes
# ------------------------------------------------------------------------------------------------


def _ddp_worker(rank: int, world: int, port: int, out_dir: str, result_dir: str) -> None:
    os.environ.update(
        {
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "RANK": str(rank),
            "WORLD_SIZE": str(world),
            "LOCAL_RANK": str(rank),
        }
    )
    torch.set_num_threads(1)
    cfg = TrainConfig.shapes_cpu(
        max_iters=2,
        batch_size=4,
        lr=1e-2,
        warmup_iters=0,
        log_every=1,
        checkpoint_every=0,
        out_dir=out_dir,
    )
    result = train(cfg, tiny_model(seed=rank), ShapesDataset(8), SHAPE_CLASSES, progress=False)
    # the test's own record of each rank's weights (not a training output)
    torch.save(result.model.state_dict(), os.path.join(result_dir, f"rank{rank}.pt"))
    torch.distributed.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_two_cpu_processes(tmp_path):
    out_dir, result_dir = tmp_path / "run", tmp_path / "results"
    result_dir.mkdir()
    mp.spawn(
        _ddp_worker, args=(2, _free_port(), str(out_dir), str(result_dir)), nprocs=2, join=True
    )
    w0 = torch.load(result_dir / "rank0.pt", weights_only=True)
    w1 = torch.load(result_dir / "rank1.pt", weights_only=True)
    # ranks started from different random weights: DDP broadcast rank 0's, then kept them equal
    # (the parameters; batch-norm running statistics are each rank's own, as in any DDP run)
    params = [name for name, _ in tiny_model().named_parameters()]
    assert all(torch.equal(w0[k], w1[k]) for k in params)
    assert not torch.equal(
        w0["loc_heads.0.weight"], tiny_model(seed=0).state_dict()["loc_heads.0.weight"]
    )
    # only rank 0 wrote: one log (two rows), one checkpoint
    assert sorted(p.name for p in out_dir.iterdir()) == ["checkpoint.pt", "log.csv"]
    assert [r["iteration"] for r in read_log(out_dir / "log.csv")] == [1, 2]
    state = ckpt.load_checkpoint(out_dir / "checkpoint.pt")
    assert all(torch.equal(state["model"][k], w0[k]) for k in state["model"])


# ------------------------------------------------------------------------------------------------
# the plotting helpers of the training notebooks (ssd_edu.viz)
# ------------------------------------------------------------------------------------------------


def test_plot_training_log_from_rows_and_csv(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ssd_edu.viz import plot_training_log

    cfg = tiny_cfg(tmp_path, "plot", max_iters=2, eval_every=2)
    result = train(
        cfg, tiny_model(), ShapesDataset(4), SHAPE_CLASSES, val_set=ShapesDataset(2), progress=False
    )
    for source in (result.log, tmp_path / "plot" / "log.csv"):
        fig = plot_training_log(source, title="tiny")
        loss_ax, map_ax = fig.axes[0], fig.axes[1]
        assert [line.get_label() for line in loss_ax.get_lines()][0] == "total"
        assert list(loss_ax.get_lines()[0].get_xdata()) == [1, 2]
        assert list(map_ax.get_lines()[0].get_xdata()) == [2]  # mAP only where measured
        plt.close(fig)


def test_plot_detections_above_filters_by_score():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ssd_edu.viz import plot_detections_above

    images = torch.zeros(2, 3, 32, 32)
    boxes = torch.tensor([[0.1, 0.1, 0.5, 0.5], [0.2, 0.2, 0.9, 0.9], [0.0, 0.0, 1.0, 1.0]])
    dets = [
        (boxes, torch.tensor([0.9, 0.6, 0.2]), torch.tensor([1, 2, 3])),
        (boxes[:0], torch.zeros(0), torch.zeros(0, dtype=torch.long)),
    ]
    fig = plot_detections_above(images, dets, list(SHAPE_CLASSES), score_threshold=0.5)
    assert [ax.get_title() for ax in fig.axes[:2]] == ["2 boxes >= 0.50", "0 boxes >= 0.50"]
    assert len(fig.axes[0].patches) == 2
    plt.close(fig)
    with pytest.raises(ValueError, match="score_threshold must lie in \\[0, 1\\], got 1.5"):
        plot_detections_above(images, dets, list(SHAPE_CLASSES), score_threshold=1.5)
