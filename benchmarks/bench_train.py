"""Training throughput (images/s): the small model on the CPU; SSD300 on a GPU when there is one.

    python benchmarks/bench_train.py            # alone
    python benchmarks/run_all.py train          # in the table of `make bench`

Rows:
- ``ssd_small`` as the CPU preset trains it (width 64, batch 16), one training step (matching +
  forward + loss + backward + SGD) on a fixed batch: the compute alone, on one thread and on all;
- on CUDA, SSD300 (21 classes), bf16 autocast, channels_last, batch 32 and 64: the compute alone
  (the same batch again and again, already on the GPU);
- the data pipeline alone: the training DataLoader (toy-VOC JPEGs from make_toy_voc, the paper's
  augmentation in worker processes as ``FastTrainTransform``, pinned memory on CUDA) iterated with
  no model: the ceiling the CPU sets on the whole pipeline; once with the photometric distortion
  in the workers and once deferred to the device (``FastTrainTransform(defer_photometric=True)``,
  what the VOC CLI does on a GPU; on CUDA the rate includes ``finish_batch``, on the CPU it is the
  workers' alone);
- on CUDA, the whole pipeline: :func:`ssd_edu.train.train` on those JPEGs, batch 32 and 64, with
  the photometric distortion deferred to the GPU, and batch 64 with it in the workers. The goal is
  1000 images/s on one H100, so that 120k iterations of 32 take about an hour.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import report, timeit  # noqa: E402

from ssd_edu.config import SHAPES_DATA, SMALL_WIDTH, TrainConfig  # noqa: E402
from ssd_edu.data import SHAPE_CLASSES, VOC_CLASSES, ShapesDataset, collate_detections  # noqa: E402
from ssd_edu.fast.engine import TrainEngine  # noqa: E402
from ssd_edu.model import ssd300, ssd_small  # noqa: E402

TOPIC = "train"


def step_fn(model, images, boxes, labels, amp: str = "none"):
    """One training step on a fixed batch, as the training loop takes it: the engine's step.

    ``boxes`` and ``labels`` stay on the CPU, as the loop keeps them; on CUDA the engine adds
    autocast, channels_last, matching on a side stream, fused SGD and the deferred guard.
    """
    device = images.device
    cfg = TrainConfig(lr=1e-4, warmup_iters=0, lr_steps=(), amp=amp, channels_last=True)
    engine = TrainEngine(model, model, cfg, device)
    return lambda: engine.step(images, boxes, labels)


def bench_small_cpu() -> None:
    """The CPU preset: ssd_small(width=SMALL_WIDTH), batch 16, on one thread and on all."""
    torch.manual_seed(0)
    batch = [ShapesDataset(16, **SHAPES_DATA)[i] for i in range(16)]
    images, boxes, labels, _ = collate_detections(batch)
    default_threads = torch.get_num_threads()
    for threads in sorted({1, default_threads}):
        torch.set_num_threads(threads)
        model = ssd_small(len(SHAPE_CLASSES) + 1, width=SMALL_WIDTH).train()
        seconds = timeit(step_fn(model, images, boxes, labels), repeat=5, warmup=2)
        report(
            TOPIC,
            f"ssd_small (width {SMALL_WIDTH}) train step, batch 16, {threads} thread(s)",
            16 / seconds,
            "images/s",
            "cpu",
            "compute only; noisy on a shared machine",
        )
    torch.set_num_threads(default_threads)


def bench_ssd300_cuda(batch_size: int) -> None:
    device = torch.device("cuda")
    torch.manual_seed(0)
    model = ssd300(21).to(device).to(memory_format=torch.channels_last).train()
    images = torch.randn(batch_size, 3, 300, 300, device=device)
    images = images.contiguous(memory_format=torch.channels_last)
    gen = torch.Generator().manual_seed(0)
    boxes, labels = [], []
    for _ in range(batch_size):
        xy = torch.rand(3, 2, generator=gen) * 0.6
        wh = torch.rand(3, 2, generator=gen) * 0.3 + 0.05
        boxes.append(torch.cat([xy, xy + wh], dim=1))  # on the CPU, as the loader gives them
        labels.append(torch.randint(1, 21, (3,), generator=gen))
    step = step_fn(model, images, boxes, labels, amp="bf16")
    seconds = timeit(step, repeat=10, warmup=5)
    report(
        TOPIC,
        f"ssd300 train step, batch {batch_size}, bf16 channels_last",
        batch_size / seconds,
        "images/s",
        "cuda",
        "compute only (fixed batch on the GPU)",
    )


def toy_voc(root: Path, defer_photometric: bool):
    from ssd_edu.data import VOCDetection, make_toy_voc
    from ssd_edu.fast.augment import FastTrainTransform

    make_toy_voc(root, 600, seed=0)
    transform = FastTrainTransform(300, defer_photometric=defer_photometric)
    return VOCDetection(root, image_set="trainval", transform=transform)


def _where(defer_photometric: bool) -> str:
    return "photometric on the device" if defer_photometric else "photometric in the workers"


def bench_loader_alone(defer_photometric: bool, batch_size: int = 32, batches: int = 100) -> None:
    """The training DataLoader with no model: how fast the workers make augmented batches."""

    from ssd_edu.data.loader import training_loader
    from ssd_edu.fast.photometric import finish_batch

    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    workers = min(14, os.cpu_count() or 1)
    with tempfile.TemporaryDirectory() as tmp:
        train_set = toy_voc(Path(tmp) / "VOCdevkit", defer_photometric)
        loader, _ = training_loader(train_set, batch_size, 0, num_workers=workers, pin_memory=cuda)

        def next_batch(it) -> None:
            images, _, _, _, pixel_work = next(it)
            images = images.to(device, non_blocking=True)
            # on the CPU, finish_batch would be the main process's work, not the loader's: there
            # this row is the workers' rate alone (bench_data.py times finish_batch)
            if pixel_work is not None and cuda:
                finish_batch(images, pixel_work.to(device, non_blocking=True))

        it = iter(loader)
        for _ in range(max(5, 2 * workers)):  # workers started and their queues full
            next_batch(it)
        start = time.perf_counter()
        for _ in range(batches):
            next_batch(it)
        if cuda:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        del it, loader
    report(
        TOPIC,
        f"training DataLoader alone (toy-VOC JPEG + FastTrainTransform), batch {batch_size}, "
        f"{_where(defer_photometric)}",
        batches * batch_size / seconds,
        "images/s",
        device,
        f"{workers} workers, no model: the CPU's ceiling"
        + ("; finish_batch included" if defer_photometric and cuda else ""),
    )


def bench_ssd300_pipeline(defer_photometric: bool, batch_size: int = 32, iters: int = 120) -> None:
    from ssd_edu.train import train

    workers = min(14, os.cpu_count() or 1)
    with tempfile.TemporaryDirectory() as tmp:
        train_set = toy_voc(Path(tmp) / "VOCdevkit", defer_photometric)
        torch.manual_seed(0)
        model = ssd300(len(VOC_CLASSES) + 1)
        cfg = TrainConfig(
            batch_size=batch_size,
            max_iters=iters,
            lr=1e-4,
            warmup_iters=0,
            num_workers=workers,
            amp="bf16",
            channels_last=True,
            eval_every=0,
            checkpoint_every=0,
            log_every=iters // 3,
            out_dir=str(Path(tmp) / "run"),
        )
        start = time.perf_counter()
        result = train(cfg, model, train_set, VOC_CLASSES, progress=False)
        torch.cuda.synchronize()
        total = time.perf_counter() - start
    # the last logging window: workers warmed up, steady state
    steady = result.log[-1]["images_per_s"]
    report(
        TOPIC,
        f"ssd300 train() with toy-VOC JPEG pipeline, batch {batch_size}, "
        f"{_where(defer_photometric)}",
        steady,
        "images/s",
        "cuda",
        f"bf16 channels_last, {workers} workers, steady state; "
        f"{iters * batch_size / total:.0f} img/s incl. start-up",
    )


def main() -> None:
    bench_small_cpu()
    for defer in (False, True):
        bench_loader_alone(defer)
    if torch.cuda.is_available():
        for bs in (32, 64):
            bench_ssd300_cuda(bs)
        for bs in (32, 64):
            bench_ssd300_pipeline(True, bs)
        bench_ssd300_pipeline(False, 64)


if __name__ == "__main__":
    main()
