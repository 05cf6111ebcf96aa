"""The SSD network: a backbone's source maps and a small convolution per map (§2.1, fig. 2).

SSD takes the feature maps of a classification network at several resolutions ("source maps")
and, on every cell of map ``k``, predicts for each of its ``k`` default boxes four offsets and
``c`` class scores with one 3x3 convolution of ``(c + 4) k`` filters (split here into a ``4k``
head and a ``ck`` head). The backbones (VGG16 with its extra layers, and the small CPU one) live
in :mod:`ssd_edu.model.backbones`.

Input: ``images [B, 3, S, S]``, RGB in [0, 1], normalised by ``IMAGENET_MEAN`` / ``IMAGENET_STD``
(:mod:`ssd_edu.imagenet`, the torchvision convention), with ``S = cfg.image_size``.
Output: ``loc [B, P, 4]`` offsets (to be decoded with variances, see :mod:`ssd_edu.boxes`) and
``logits [B, P, num_classes]`` (class 0 is background), in docs/design.md's default-box order: map
by map, then row ``i``, column ``j``, then the ``k`` boxes of the cell. That order is what
reshaping a head's output ``[B, k*4, f, f] -> [B, f, f, k*4] -> [B, f*f*k, 4]`` gives.

At construction :class:`SSD` runs once on a zero image (on the ``meta`` device where it can) and
checks every map and head against ``cfg``, so a mismatched backbone fails with a message, not
with a wrong number of default boxes later.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.func import functional_call

from ssd_edu.model.backbones import (
    _EXTRAS_300,
    _EXTRAS_512,
    SmallBackbone,
    VGG16Backbone,
    _xavier_init,
)
from ssd_edu.priors import SSD128_SHAPES, SSD300_VOC, SSD512_VOC, PriorConfig, default_boxes


class SSD(nn.Module):
    """The single-shot detector: a backbone's source maps, and two 3x3 heads per map.

    Args:
        cfg: the default boxes (``cfg.feature_maps`` must be the backbone's map sizes at
            ``cfg.image_size``; ``cfg.boxes_per_location`` sets each head's ``k``).
        backbone: a module whose ``forward(images)`` returns the list of source maps, largest
            first, with an ``out_channels`` tuple (and optionally ``source_names``).
        num_classes: classes including background (21 for VOC).

    Attributes:
        cfg, num_classes, backbone, loc_heads, conf_heads, and ``priors`` ``[P, 4]`` cxcywh (a
        non-persistent buffer: it follows ``.to(device)`` and is not saved in checkpoints).

    Raises:
        ValueError: at construction, when a source map's size or channels disagree with ``cfg``
            or the backbone's ``out_channels``, or a head's output does not hold ``k`` boxes.

    Paper: §2.1 "Model" and figure 2.
    """

    def __init__(self, cfg: PriorConfig, backbone: nn.Module, num_classes: int) -> None:
        super().__init__()
        if not isinstance(cfg, PriorConfig):
            raise TypeError(f"cfg must be a PriorConfig, got {type(cfg).__name__}")
        if not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(
                f"num_classes must be an int >= 2 (background + at least one class), "
                f"got {num_classes!r}"
            )
        channels = tuple(getattr(backbone, "out_channels", ()))
        if len(channels) != len(cfg.feature_maps):
            raise ValueError(
                f"backbone.out_channels lists {len(channels)} source maps {channels} but "
                f"cfg.feature_maps has {len(cfg.feature_maps)} {cfg.feature_maps}"
            )
        self.cfg = cfg
        self.num_classes = num_classes
        self.backbone = backbone
        ks = cfg.boxes_per_location
        self.loc_heads = nn.ModuleList(
            nn.Conv2d(c, k * 4, 3, padding=1) for c, k in zip(channels, ks)
        )
        self.conf_heads = nn.ModuleList(
            nn.Conv2d(c, k * num_classes, 3, padding=1) for c, k in zip(channels, ks)
        )
        _xavier_init(self.loc_heads)
        _xavier_init(self.conf_heads)
        self.register_buffer("priors", default_boxes(cfg), persistent=False)
        self._check_against_cfg()

    def source_name(self, k: int) -> str:
        names = getattr(self.backbone, "source_names", None)
        return f"map {k} ({names[k]})" if names else f"map {k}"

    def _check_against_cfg(self) -> None:
        """Dry run on a zero image: every map and head must match ``cfg``, map by map."""
        cfg = self.cfg
        sources, head_outputs = _dry_run(self, cfg.image_size)
        if len(sources) != len(cfg.feature_maps):
            raise ValueError(
                f"the backbone returned {len(sources)} source maps but cfg.feature_maps has "
                f"{len(cfg.feature_maps)} {cfg.feature_maps}"
            )
        for k, (x, f, c) in enumerate(zip(sources, cfg.feature_maps, self.backbone.out_channels)):
            if tuple(x.shape[1:]) != (c, f, f):
                raise ValueError(
                    f"{self.source_name(k)} has shape {list(x.shape[1:])} [C, H, W] at "
                    f"{cfg.image_size} px but cfg.feature_maps[{k}] = {f} and "
                    f"backbone.out_channels[{k}] = {c} expect {[c, f, f]}"
                )
            k_boxes = cfg.boxes_per_location[k]
            for out, per_box in zip(head_outputs[k], (4, self.num_classes)):
                if tuple(out.shape[1:]) != (k_boxes * per_box, f, f):
                    raise ValueError(
                        f"head on {self.source_name(k)} gives {list(out.shape[1:])} but "
                        f"{k_boxes} boxes per location need {[k_boxes * per_box, f, f]}"
                    )

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """Predict offsets and class scores for every default box.

        Args:
            images: ``[B, 3, S, S]``, ``S = cfg.image_size``, ImageNet-normalised RGB.

        Returns:
            ``loc [B, P, 4]`` offsets and ``logits [B, P, num_classes]``, in default-box order.

        Paper: §2.1 "Convolutional predictors for detection".
        """
        s = self.cfg.image_size
        if images.ndim != 4 or images.shape[1] != 3 or tuple(images.shape[2:]) != (s, s):
            raise ValueError(
                f"images must have shape [B, 3, {s}, {s}] (cfg.image_size = {s}), "
                f"got {list(images.shape)}"
            )
        loc, logits = [], []
        for x, loc_head, conf_head in zip(self.backbone(images), self.loc_heads, self.conf_heads):
            loc.append(flatten_head(loc_head(x), 4))  # [B, f*f*k, 4]
            logits.append(flatten_head(conf_head(x), self.num_classes))  # [B, f*f*k, C]
        return torch.cat(loc, dim=1), torch.cat(logits, dim=1)  # [B, P, 4], [B, P, C]


def flatten_head(out: Tensor, values_per_box: int) -> Tensor:
    """One head's output map as one row per default box, in docs/design.md order.

    A head's channel ``a * n + v`` at cell ``(i, j)`` is value ``v`` of the cell's box ``a``; moving
    channels last puts the ``k`` boxes of a cell next to each other, so the rows come out as
    (row ``i``, column ``j``, box ``a``): row ``(i * f + j) * k + a``.

    Args:
        out: ``[B, k * n, H, W]`` a head's output (``n = values_per_box``).
        values_per_box: ``n``: 4 for the offsets, ``num_classes`` for the scores.

    Returns:
        ``[B, H * W * k, n]``.

    Paper: §2.1 "Convolutional predictors for detection".
    """
    if out.ndim != 4 or out.shape[1] % values_per_box != 0:
        raise ValueError(
            f"out must have shape [B, k * {values_per_box}, H, W], got {list(out.shape)}"
        )
    b = out.shape[0]
    return out.permute(0, 2, 3, 1).reshape(b, -1, values_per_box)  # [B, H*W*k, n]


def _dry_run(model: SSD, image_size: int) -> tuple[list[Tensor], list[tuple[Tensor, Tensor]]]:
    """Run backbone and heads on one zero image; return the source maps and each map's head outputs.

    Only shapes matter, so it runs on the ``meta`` device (no arithmetic, no memory), with the
    module's own weights swapped for meta copies; a backbone that cannot run there runs for real.
    """

    def run(to_meta: bool) -> tuple[list[Tensor], list[tuple[Tensor, Tensor]]]:
        probe = next(model.parameters())
        device = "meta" if to_meta else probe.device
        tensors = {
            name: (t.to("meta") if to_meta else t)
            for name, t in [*model.named_parameters(), *model.named_buffers()]
        }
        x = torch.zeros(1, 3, image_size, image_size, device=device, dtype=probe.dtype)

        def call(prefix: str, module: nn.Module, *args: Tensor):
            own = {n.removeprefix(prefix): t for n, t in tensors.items() if n.startswith(prefix)}
            return functional_call(module, own, args)

        sources = call("backbone.", model.backbone, x)
        heads = [
            (call(f"loc_heads.{k}.", lh, src), call(f"conf_heads.{k}.", ch, src))
            for k, (src, lh, ch) in enumerate(zip(sources, model.loc_heads, model.conf_heads))
        ]
        return sources, heads

    was_training = model.training
    model.eval()  # batch-norm cannot take batch 1 at 1x1 in training mode
    try:
        with torch.no_grad():
            try:
                return run(to_meta=True)
            except (NotImplementedError, RuntimeError):
                return run(to_meta=False)
    finally:
        model.train(was_training)


def ssd300(num_classes: int = 21, cfg: PriorConfig = SSD300_VOC) -> SSD:
    """SSD300 for VOC: VGG16 base, six source maps (38, 19, 10, 5, 3, 1), 8732 default boxes.

    The VGG16 layers start untrained: load ImageNet weights with :func:`load_vgg16_backbone`.
    ``cfg`` may replace the default boxes' sizes and ratios (e.g. with
    :func:`ssd_edu.fit_boxes.fit_default_boxes`); its maps must stay SSD300's.

    Paper: §2.1, figure 2; §3.1 (SSD300).
    """
    return SSD(cfg, VGG16Backbone(_EXTRAS_300), num_classes)


def ssd512(num_classes: int = 21, cfg: PriorConfig = SSD512_VOC) -> SSD:
    """SSD512 for VOC: one more extra block (conv12_2), seven maps (64 ... 1), 24564 default boxes.

    ``cfg`` as in :func:`ssd300` (its maps must stay SSD512's).

    Paper: §3.1, "SSD512" (and Table 1).
    """
    return SSD(cfg, VGG16Backbone(_EXTRAS_512), num_classes)


def ssd_small(num_classes: int, cfg: PriorConfig = SSD128_SHAPES, width: int = 128) -> SSD:
    """The small CPU model: :class:`SmallBackbone` with SSD's heads and default boxes.

    Args:
        num_classes: classes including background.
        cfg: default boxes; its ``feature_maps`` must be the backbone's map sizes (16, 8, 4, 2, 1
            at 128 px for ``SSD128_SHAPES``).
        width: channels of each source map.
    """
    return SSD(cfg, SmallBackbone(len(cfg.feature_maps), width), num_classes)


def unwrap(model: nn.Module) -> nn.Module:
    """The plain SSD inside ``DistributedDataParallel`` and/or ``torch.compile`` wrappers.

    Its state dict has the plain parameter names (no ``module.`` or ``_orig_mod.`` prefix), so a
    checkpoint saved from it loads into a fresh model.
    """
    model = getattr(model, "module", model)  # DistributedDataParallel
    return getattr(model, "_orig_mod", model)  # torch.compile
