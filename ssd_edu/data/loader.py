"""Batches for detection: stacking images, and the seeded, endless stream that training reads.

Images of a batch share one shape and are stacked; their ground truth cannot be, because images
hold different numbers of objects (zero included), so boxes, labels and difficult flags stay lists
of per-image tensors (docs/design.md, "Batches").

Training reads batches from :func:`training_loader`, built so that a run is reproducible to the
bit and can be resumed exactly:

* the order of epoch ``e`` is a shuffle seeded by ``seed + e`` (``DistributedSampler``, which also
  gives each DDP rank its share); full batches only, so every step has the same shape;
* item ``index`` of epoch ``e`` is drawn with its own random seed, a function of
  ``(seed, epoch, index)``, so its augmentation does not depend on which worker process loads it
  or on what came before; the caller's random state is left as it was;
* the stream never ends and starts at any iteration: a resume skips the batches already trained
  on without loading them, and the workers' prefetching carries on across epoch boundaries.

Paper: not in the paper; §3's schedule counts iterations, which this stream provides.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler


def collate_detections(batch: list[tuple[Tensor, ...]]) -> tuple:
    """DataLoader ``collate_fn`` for detection: images stacked, per-image targets kept as lists.

    Args:
        batch: ``B`` items ``(image [3, S, S], boxes [N_b, 4], labels [N_b], difficult [N_b])``,
            or all with a fifth element ``params [15]`` (``FastTrainTransform(...,
            defer_photometric=True)``, uint8 images).

    Returns:
        ``(images [B, 3, S, S], boxes list of [N_b, 4], labels list of [N_b], difficult list)``,
        plus ``params [B, 15]`` stacked when the items carry it.
    """
    if len(batch) == 0:
        raise ValueError("batch must hold at least one item, got 0")
    lengths = {len(item) for item in batch}
    if lengths not in ({4}, {5}):
        raise ValueError(
            "items must all be (image, boxes, labels, difficult) or all carry a fifth element "
            f"(deferred photometric params), got item lengths {sorted(lengths)}"
        )
    images, boxes, labels, difficult, *params = zip(*batch)
    shapes = {(tuple(im.shape), im.dtype) for im in images}
    if len(shapes) > 1:
        raise ValueError(
            f"images in a batch must share one shape and dtype, got {sorted(map(str, shapes))}"
        )
    out = (torch.stack(images), list(boxes), list(labels), list(difficult))
    return (*out, torch.stack(params[0])) if params else out


class SeededItems(Dataset):
    """Wraps a dataset so item ``(epoch, index)`` is drawn with its own fixed random seed.

    Yields ``(item, index)``. The global generators (torch's CPU one, numpy's, Python's) are
    seeded from ``(seed, epoch, index)`` for the call and restored afterwards.
    """

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset, self.seed = dataset, seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> tuple[Any, int]:
        epoch, index = key
        # datasets that draw their augmentation from (seed, epoch, index) learn the epoch here,
        # in whichever process loads the item (a DataLoader worker holds its own copy)
        _set_epoch(self.dataset, epoch)
        s = ((self.seed * 1_000_003 + epoch) * 1_000_033 + index) % (2**63)
        py_state, np_state = random.getstate(), np.random.get_state()
        with torch.random.fork_rng(devices=[]):
            # the CPU generator only: torch.manual_seed would also queue a seed for every
            # accelerator, which costs a stack trace per item in a DataLoader worker
            torch.default_generator.manual_seed(s)
            random.seed(s)
            np.random.seed(s % 2**32)
            try:
                item = self.dataset[index]
            finally:
                random.setstate(py_state)
                np.random.set_state(np_state)
        return item, index


def _set_epoch(dataset: Dataset, epoch: int) -> None:
    """Call ``set_epoch`` on a dataset, or on every part of a ``ConcatDataset``/``Subset``."""
    if hasattr(dataset, "set_epoch"):
        if getattr(dataset, "epoch", None) != epoch:
            dataset.set_epoch(epoch)
    for part in getattr(dataset, "datasets", ()):  # ConcatDataset
        _set_epoch(part, epoch)
    if hasattr(dataset, "dataset") and hasattr(dataset, "indices"):  # Subset
        _set_epoch(dataset.dataset, epoch)


class EpochBatches:
    """Batches of ``(epoch, index)`` keys, epoch after epoch without end, from any iteration.

    Args:
        dataset: what is sampled (only its length is used).
        batch_size: images per batch of this process.
        seed: epoch ``e`` is shuffled with ``seed + e``.
        rank, world: this process's share (DDP).
        start: the iteration (number of batches already trained on) to begin at.
    """

    def __init__(
        self, dataset: Dataset, batch_size: int, seed: int, rank: int = 0, world: int = 1,
        start: int = 0,
    ) -> None:  # fmt: skip
        self.sampler = DistributedSampler(
            dataset, num_replicas=world, rank=rank, shuffle=True, seed=seed, drop_last=True
        )
        self.batch_size = batch_size
        self.per_epoch = len(self.sampler) // batch_size  # full batches only: fixed shapes
        if self.per_epoch == 0:
            raise ValueError(
                f"the training set has {len(dataset)} images, fewer than one batch of "
                f"{batch_size} per process ({world} processes): use a smaller batch_size"
            )
        self.epoch, self.start = divmod(start, self.per_epoch)

    def indices_at(self, step: int) -> list[int]:
        """The dataset indices of batch ``step`` of the stream (0 = its first batch)."""
        epoch, b = divmod(self.epoch * self.per_epoch + self.start + step, self.per_epoch)
        current = self.sampler.epoch
        self.sampler.set_epoch(epoch)
        order = list(self.sampler)
        self.sampler.set_epoch(current)  # the running stream keeps its own epoch
        return order[b * self.batch_size : (b + 1) * self.batch_size]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        epoch, start = self.epoch, self.start
        while True:
            self.sampler.set_epoch(epoch)
            order = list(self.sampler)
            for b in range(start, self.per_epoch):
                yield [(epoch, i) for i in order[b * self.batch_size : (b + 1) * self.batch_size]]
            epoch, start = epoch + 1, 0


def collate_indexed(items: list) -> tuple[Tensor, list, list, list[int], Tensor | None]:
    """Batch ``(item, index)`` pairs: ``(images, boxes, labels, indices, params or None)``."""
    images, boxes, labels, _difficult, *params = collate_detections([item for item, _ in items])
    return images, boxes, labels, [index for _, index in items], (params[0] if params else None)


# seconds a DataLoader worker may take for one batch before training stops and says which
WORKER_TIMEOUT = 300.0


class LoaderTimeout(RuntimeError):
    """A data-loading worker took too long for a batch; the message names the worker and items."""


class TrainingStream:
    """The training DataLoader, iterated so that a stuck worker is named with the batch it held.

    Batches go to the workers in turn, so batch ``k`` of the stream was worker ``k % workers``'s.
    """

    def __init__(self, loader: DataLoader, batches: EpochBatches, workers: int) -> None:
        self.loader, self.batches, self.workers = loader, batches, workers

    def __iter__(self) -> Iterator[tuple]:
        it = iter(self.loader)
        for k in itertools.count():
            try:
                batch = next(it)
            except RuntimeError as e:
                if "timed out" not in str(e):
                    raise
                raise LoaderTimeout(
                    f"data-loading worker {k % max(self.workers, 1)} took more than "
                    f"{WORKER_TIMEOUT:g} s for batch {k} of this stream (dataset indices "
                    f"{self.batches.indices_at(k)}): one of those items hangs (a network "
                    f"drive, a lock, an endless loop in a transform?)"
                ) from None
            yield batch


def training_loader(
    dataset: Dataset,
    batch_size: int,
    seed: int,
    rank: int = 0,
    world: int = 1,
    num_workers: int = 0,
    start: int = 0,
    pin_memory: bool = False,
) -> tuple[TrainingStream, EpochBatches]:
    """The endless training stream, starting at iteration ``start``.

    Returns:
        ``(loader, batches)``: iterate ``loader`` for ``(images [B, 3, S, S], boxes, labels,
        indices, params or None)``; ``batches.per_epoch`` is the number of batches in an epoch.
    """
    batches = EpochBatches(dataset, batch_size, seed, rank, world, start)
    loader = DataLoader(
        SeededItems(dataset, seed),
        batch_sampler=batches,
        num_workers=num_workers,
        collate_fn=collate_indexed,
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0,
        prefetch_factor=4 if num_workers > 0 else None,
        timeout=WORKER_TIMEOUT if num_workers > 0 else 0,
    )
    return TrainingStream(loader, batches, num_workers), batches
