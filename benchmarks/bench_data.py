"""The input pipeline: JPEG file -> augmented, normalised 300x300 tensor with boxes, per core.

Training on a GPU waits for this pipeline, so the figure that matters is images per second per
CPU core (one thread): a DataLoader with k workers delivers about k times that. The training rows
time the reference ``TrainTransform`` (the paper's steps one after another on the full image) and
the fast layer's ``FastTrainTransform`` (zoom out and crop as one window, resized once), which is
what training uses, on the same JPEG and the same draws. The test JPEG
(a 500x375 crop of matplotlib's Grace Hopper photo) is written to a temporary folder. Rates are
also given in CPU time (``time.process_time``), which other processes on a shared machine
disturb less than wall-clock time. The CUDA rows time the same CPU pipeline followed by the copy
of the batch to the GPU.
"""

import tempfile
import time
from pathlib import Path

import torch
from common import report, timeit
from PIL import Image

from ssd_edu.data import EvalTransform, ShapesDataset, TrainTransform, item_generator, to_pil
from ssd_edu.fast.augment import FastTrainTransform
from ssd_edu.fast.photometric import finish_batch
from ssd_edu.viz import sample_photo

BOXES = torch.tensor([[0.04, 0.06, 1.0, 1.0], [0.29, 0.25, 0.65, 0.55], [0.27, 0.06, 0.68, 0.29]])
LABELS = torch.tensor([15, 15, 15])
DIFFICULT = torch.tensor([False, True, False])


def rate(fn, n: int) -> tuple[float, float]:
    """(wall, cpu) images per second of ``fn(i)`` for i in range(n), after a short warm-up."""
    for i in range(5):
        fn(i)
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(n):
        fn(i)
    return n / (time.perf_counter() - wall), n / (time.process_time() - cpu)


def main() -> None:
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "photo_500x375.jpg"
        to_pil(sample_photo()).crop((6, 100, 506, 475)).save(path, quality=90)
        reference, evaluate = TrainTransform(size=300), EvalTransform(size=300)
        train = FastTrainTransform(size=300)
        deferred = FastTrainTransform(size=300, defer_photometric=True)

        def augmenting(transform):
            def fn(i: int):
                g = item_generator(0, 0, i)
                return transform(Image.open(path), BOXES, LABELS, DIFFICULT, generator=g)

            return fn

        # the reference last: its large zoom-out canvases would slow the next rows' allocations
        cases = {
            "JPEG decode only 500x375": lambda i: Image.open(path).convert("RGB"),
            "train: JPEG -> augmented 300x300, FastTrainTransform": augmenting(train),
            "train, photometric deferred: JPEG -> uint8 300x300, FastTrainTransform": augmenting(
                deferred
            ),
            "eval: JPEG -> resized 300x300": augmenting(evaluate),
            "train: JPEG -> augmented 300x300, reference TrainTransform (plain steps)": augmenting(
                reference
            ),
        }
        for case, fn in cases.items():
            wall, cpu = rate(fn, 300)
            report("data", case, cpu, "img/s/core", "cpu", f"CPU time; wall clock {wall:.0f}")

        shapes = ShapesDataset(10_000, image_size=128)
        wall, cpu = rate(lambda i: shapes[i], 500)
        report(
            "data", "ShapesDataset 128x128 item", 1e3 / cpu, "ms", "cpu", f"wall {1e3 / wall:.2f}"
        )
        for name, transform in (
            ("reference", TrainTransform(128)),
            ("fast", FastTrainTransform(128)),
        ):
            augmented = ShapesDataset(10_000, image_size=128, transform=transform)
            wall, cpu = rate(lambda i, data=augmented: data[i], 300)
            report(
                "data",
                f"ShapesDataset 128x128 augmented ({name})",
                1e3 / cpu,
                "ms",
                "cpu",
                f"wall {1e3 / wall:.2f}",
            )

        # the deferred work of a batch of 32, as the training loop does it on its device
        items = [
            deferred(Image.open(path), BOXES, LABELS, DIFFICULT, item_generator(0, 0, i))
            for i in range(32)
        ]
        images = torch.stack([item[0] for item in items])  # [32, 3, 300, 300] uint8
        params = torch.stack([item[4] for item in items])  # [32, 15]
        for device in ["cpu"] + (["cuda"] if torch.cuda.is_available() else []):
            x, p = images.to(device), params.to(device)
            seconds = timeit(lambda: finish_batch(x, p), repeat=5 if device == "cpu" else 20)
            report(
                "data",
                "finish_batch (photometric + normalise), batch 32 x 300x300",
                seconds * 1e3,
                "ms",
                device,
                "1 thread" if device == "cpu" else "",
            )

        if torch.cuda.is_available():

            def to_gpu(i: int) -> None:
                image = train(Image.open(path), BOXES, LABELS, DIFFICULT, item_generator(0, 0, i))[
                    0
                ]
                image.pin_memory().to("cuda", non_blocking=True)
                torch.cuda.synchronize()

            wall, cpu = rate(to_gpu, 300)
            report(
                "data", "train: JPEG -> 300x300 on GPU", wall, "img/s/core", "cuda", "wall clock"
            )


if __name__ == "__main__":
    main()
