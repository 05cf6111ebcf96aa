"""The training step made fast: the engine behind :func:`ssd_edu.train.train`.

It computes what :func:`ssd_edu.step.train_step` computes (match, forward, loss, backward, SGD
step, the non-finite guard), and owns what a run needs around it: the SGD optimiser, the
learning-rate schedule and, for fp16, the gradient scaler. On the CPU in fp32 it calls
``train_step`` itself, with :func:`ssd_edu.fast.matching.assign_targets_cpu`: the padded batch
matching where it is the faster (on the CPU preset's batches, 16 images x 1524 default boxes x
1-3 objects, 0.2-0.25x the CPU time of a loop over images), image by image where the padding
costs more (SSD300 images with many objects). Where the CPU computes bf16 natively
(AVX512-BF16, AMX; :func:`ssd_edu.fast.inference.cpu_has_bf16`) and ``cfg.amp == "bf16"``, the
CPU step runs bf16 autocast and channels_last like the CUDA one (the small model's step: 0.39x
the CPU time of fp32 NCHW; channels_last alone 0.78x). On CUDA it adds:

* bf16 (or fp16 with a gradient scaler) autocast and the channels_last memory layout;
* matching on a CUDA stream of its own: matching reads one flag back per call, which waits only
  for its own few kernels there, not for the whole previous SGD step queued on the main stream;
* one fused SGD kernel for every weight, which can skip a step on the device when told to;
* a **deferred guard**. Reading a flag from the GPU waits for all queued work, so checking every
  step at once would stop the CPU from queueing the next one while the GPU works. Instead, a
  non-finite loss, gradient or batch-norm statistic raises ``halt`` on the device; the fused step
  skips itself while ``halt`` is up (this step and every later one), and the flag is read one
  iteration later, or at :meth:`TrainEngine.flush` (before any log row, evaluation or
  checkpoint). The weights never see the bad step, and the error names the right iteration.
  A weight that overflows in a step raises ``halt`` for the steps after it, and nothing is saved.

What it trades: one iteration of latency in the guard, for no host-device synchronisation per
iteration. ``make bench`` on an H100: the SSD300 training step went from 934 to 1130 images/s at
batch 32 with these changes.

Reference: :func:`ssd_edu.step.train_step` (a test holds the engine's step, run on the CPU with
the deferred guard, equal to it in loss and gradients). Paper: §2.2 "Training", §3.
"""

from __future__ import annotations

import contextlib

import torch
import torch.distributed as dist
from torch import Tensor, nn

from ssd_edu.config import Schedule, TrainConfig
from ssd_edu.fast.inference import cpu_has_bf16
from ssd_edu.fast.matching import assign_targets_batch, assign_targets_cpu
from ssd_edu.fast.photometric import finish_batch
from ssd_edu.loss import MultiBoxLoss
from ssd_edu.step import NonFiniteLossError, first_non_finite, train_step


class TrainEngine:
    """Optimiser, schedule and the training step of one process.

    Args:
        model: the network to train (already on ``device``; may be wrapped in DDP or
            ``torch.compile``, whose forward is then used).
        net: the plain SSD inside ``model`` (its parameters are optimised, its priors matched).
        cfg: the run's settings (optimiser, schedule, ``amp``, ``channels_last``).
        device: where training runs.
        world: number of DDP processes (a bad step on one rank stops them all).
        deferred_guard: read the guard's flag one iteration late; default: on CUDA unless fp16.
    """

    def __init__(
        self,
        model: nn.Module,
        net: nn.Module,
        cfg: TrainConfig,
        device: torch.device,
        world: int = 1,
        deferred_guard: bool | None = None,
    ) -> None:
        self.model, self.net, self.cfg, self.device, self.world = model, net, cfg, device, world
        cuda = device.type == "cuda"
        self.deferred = _deferred_guard(device, cfg) if deferred_guard is None else deferred_guard
        self.amp = _autocast_dtype(device, cfg)  # None: fp32
        self.fused = cuda or self.deferred  # one kernel, and it can skip a step on a flag
        # the CPU in fp32 without deferral runs the reference step
        self.fast = self.fused or self.amp is not None
        self.optimizer = torch.optim.SGD(
            net.parameters(),
            lr=cfg.lr,
            momentum=cfg.momentum,
            weight_decay=cfg.weight_decay,
            fused=True if self.fused else None,
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, Schedule(cfg))
        self.scaler = torch.amp.GradScaler("cuda", enabled=cuda and cfg.amp == "fp16")
        # labels are checked on the CPU before matching, so the loss need not read them back
        self.num_classes: int | None = getattr(net, "num_classes", None)
        self.criterion = MultiBoxLoss(cfg.neg_pos_ratio, cfg.alpha, self.num_classes is None)
        self.priors = net.priors.to(device)  # [P, 4] cxcywh
        # high priority: its few small kernels go ahead of the queued convolutions
        self.stream = torch.cuda.Stream(device, priority=-1) if cuda else None
        self.halt = torch.zeros((), dtype=torch.float32, device=device)
        if self.deferred:
            self.optimizer.found_inf = self.halt  # read by the fused SGD step: skip when 1
        self.pending: tuple | None = None  # (tag, losses, flag on the CPU, CUDA event)

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def step(
        self,
        images: Tensor,
        boxes: list[Tensor],
        labels: list[Tensor],
        pixel_work: Tensor | None = None,
        tag=None,
    ) -> Tensor:
        """One training iteration; returns ``[3]`` losses (on the device, not synchronised).

        Args:
            images: ``[B, 3, S, S]`` from the loader (``uint8`` when ``pixel_work`` is given).
            boxes, labels: per-image ground truth, on the CPU as the loader gives it.
            pixel_work: ``[B, 15]`` deferred photometric parameters, or ``None``.
            tag: attached to a :class:`~ssd_edu.step.NonFiniteLossError` raised for this step.

        Raises:
            NonFiniteLossError: for this step, or with the deferred guard for the previous one.
        """
        self._check_labels(labels, tag)
        images = images.to(self.device, non_blocking=True)  # [B, 3, S, S]
        if pixel_work is not None:  # FastTrainTransform(defer_photometric=True): finish here
            images = finish_batch(images, pixel_work.to(self.device, non_blocking=True))
        if uses_channels_last(self.device, self.cfg):
            images = images.contiguous(memory_format=torch.channels_last)
        if self.fast:
            losses = self._fast_step(images, boxes, labels, tag)
        else:
            try:
                losses = train_step(
                    self.model, self.optimizer, self.criterion, images, boxes, labels,
                    self.priors, self.cfg.iou_threshold, assign_targets_cpu,
                )  # fmt: skip
            except NonFiniteLossError as e:
                raise NonFiniteLossError(str(e), e.what, e.losses, tag) from None
        self.scheduler.step()
        return losses

    def _fast_step(self, images: Tensor, boxes: list, labels: list, tag) -> Tensor:
        with torch.no_grad():
            loc_t, cls_t = self._match(boxes, labels)  # [B, P, 4], [B, P]
        amp = self.amp is not None
        with torch.autocast(self.device.type, dtype=self.amp) if amp else contextlib.nullcontext():
            loc, logits = self.model(images)  # [B, P, 4], [B, P, C]
        # the loss in float32: softmax and log over 8732 boxes are fragile in half precision
        total, loc_loss, conf_loss = self.criterion(loc.float(), logits.float(), loc_t, cls_t)
        losses = torch.stack((total, loc_loss, conf_loss)).detach()  # [3]
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        # fp16's scaler skips steps whose scaled gradients overflow, as it should: not an error
        grads = [] if self.scaler.is_enabled() else [p.grad for p in self.net.parameters()]
        bad = self._any_non_finite([losses, *self.net.buffers(), *grads])  # 0-d, on the device
        if not self.deferred:
            self._raise_if(tag, losses, bad)  # at once: a bad step never reaches the weights
        torch.maximum(self.halt, bad, out=self.halt)  # once up, it stays up
        self.scaler.step(self.optimizer)
        self.scaler.update()
        overflow = self._any_non_finite(list(self.net.parameters()))  # the step's own result
        torch.maximum(self.halt, overflow, out=self.halt)
        if not self.deferred:
            self._raise_if(tag, losses, overflow)
            return losses
        self.flush()  # the previous step's flag: the GPU is past it by now, so no waiting
        event = torch.cuda.Event() if self.device.type == "cuda" else None
        if event is not None:
            event.record()
        # a copy: on the CPU, .to("cpu") would hand back halt itself, which later steps raise
        self.pending = (tag, losses, self.halt.to("cpu", non_blocking=True, copy=True), event)
        return losses

    def flush(self) -> None:
        """Raise for a deferred step that went bad; nothing else is pending afterwards."""
        if self.pending is None:
            return
        tag, losses, flag, event = self.pending
        self.pending = None
        if event is not None:
            event.synchronize()  # only until that step's flag is written, not the later work
        self._raise_if(tag, losses, flag)

    def _match(self, boxes: list[Tensor], labels: list[Tensor]) -> tuple[Tensor, Tensor]:
        if self.stream is None:  # the CPU: padded or image by image, whichever is faster
            return assign_targets_cpu(boxes, labels, self.priors, self.cfg.iou_threshold)
        main = torch.cuda.current_stream(self.device)
        with torch.cuda.stream(self.stream):
            loc_t, cls_t = assign_targets_batch(boxes, labels, self.priors, self.cfg.iou_threshold)
        main.wait_stream(self.stream)
        # made on the side stream, used on the main one: keep their memory until it is done
        loc_t.record_stream(main)
        cls_t.record_stream(main)
        return loc_t, cls_t

    def _any_non_finite(self, tensors: list[Tensor]) -> Tensor:
        """``1.0`` on the device if any floating tensor holds a NaN or inf, else ``0.0``."""
        tensors = [t for t in tensors if t is not None and t.is_floating_point()]
        # the largest magnitude of each: NaN or inf exactly when the tensor holds one
        largest = torch._foreach_norm(tensors, float("inf")) if tensors else []
        bad = (~torch.isfinite(torch.stack(largest))).any().float() if largest else self.halt * 0
        if self.world > 1:
            dist.all_reduce(bad)  # every rank stops together, or the others would hang
        return bad

    def _raise_if(self, tag, losses: Tensor, bad: Tensor) -> None:
        if bool(bad):
            scaled = self.scaler.is_enabled()  # fp16: overflowing scaled gradients are normal
            what = first_non_finite(self.net, losses, gradients=not scaled)
            what = what or first_non_finite(self.net, None, gradients=False)  # the weights
            what = what or "a gradient, a weight or a batch-norm statistic (on some process)"
            raise NonFiniteLossError(f"{what} is not finite", what, losses.cpu(), tag)

    def _check_labels(self, labels: list[Tensor], tag) -> None:
        """Object labels must be in ``1..num_classes - 1``; checked on the CPU, before matching."""
        if not labels or self.num_classes is None:  # unknown: the loss checks them instead
            return
        flat = torch.cat([lab.reshape(-1) for lab in labels])  # [sum G_i], on the CPU
        if flat.numel() and int(flat.max()) >= self.num_classes:
            where = f" (dataset indices {tag[1]})" if isinstance(tag, tuple) else ""
            raise ValueError(
                f"a label of the batch{where} is {int(flat.max())}, but the model has "
                f"{self.num_classes} classes (labels 1..{self.num_classes - 1}, 0 is background)"
            )

    def state_dict(self) -> dict:
        """The optimiser, schedule and scaler, for a checkpoint."""
        # the schedule's function is rebuilt from cfg on resume: store only its position
        scheduler = self.scheduler.state_dict() | {"lr_lambdas": [None]}
        return {"optimizer": self.optimizer.state_dict(), "scheduler": scheduler,
                "scaler": self.scaler.state_dict()}  # fmt: skip

    def load_state_dict(self, state: dict) -> None:
        """Continue from :meth:`state_dict` (saved on any device)."""
        self.optimizer.load_state_dict(state["optimizer"])
        for group in self.optimizer.param_groups:  # the saved run may have used another device
            group["fused"], group["foreach"] = (True if self.fused else None), None
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])


def _autocast_dtype(device: torch.device, cfg: TrainConfig) -> torch.dtype | None:
    """The autocast dtype of the forward pass, or ``None`` for fp32: ``cfg.amp`` on CUDA; on the
    CPU bf16 only, and only where the CPU computes it natively (emulated bf16 is slower)."""
    if device.type == "cuda" and cfg.amp != "none":
        return torch.bfloat16 if cfg.amp == "bf16" else torch.float16
    if device.type == "cpu" and cfg.amp == "bf16" and cpu_has_bf16():
        return torch.bfloat16
    return None


def uses_channels_last(device: torch.device, cfg: TrainConfig) -> bool:
    """Whether training runs channels_last: ``cfg.channels_last`` on CUDA, and on the CPU when it
    trains in bf16 (oneDNN's bf16 convolutions work in NHWC)."""
    if not cfg.channels_last:
        return False
    return device.type == "cuda" or _autocast_dtype(device, cfg) is not None


def _deferred_guard(device: torch.device, cfg: TrainConfig) -> bool:
    """Whether the guard reads its flag one iteration late: on CUDA, unless fp16's grad scaler
    (which drives the fused step's skip flag itself) is in charge."""
    return device.type == "cuda" and cfg.amp != "fp16"
