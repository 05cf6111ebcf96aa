"""PASCAL VOC in the VOCdevkit layout: the dataset the paper trains and tests on (§3.1).

A VOCdevkit folder holds ``VOC2007/`` and ``VOC2012/``, each with ``Annotations/<id>.xml``,
``JPEGImages/<id>.jpg`` and ``ImageSets/Main/<image_set>.txt`` (one image id per line). The
paper's "07+12" training set is the union of VOC2007 trainval and VOC2012 trainval:
``VOCDetection(root, years=("2007", "2012"))``. Any dataset in this layout works with its own
``class_names``.

Coordinates: VOC numbers pixels from 1, and a box ``xmin..xmax`` includes both end pixels. Pixel
``x`` (1-based) covers the interval ``[x - 1, x]`` of the image's width ``W``, so the box covers
``[xmin - 1, xmax]`` and, as fractions, ``x1 = (xmin - 1) / W`` and ``x2 = xmax / W`` (likewise
with heights). A box that leaves the image is clipped to [0, 1]; a box with ``xmax < xmin`` (or
``ymax < ymin``) is dropped with a warning naming the file and the object; so every box handed on
has ``x2 > x1`` and ``y2 > y1`` and no NaN can arise downstream.

Items are ``(image, boxes, labels, difficult)``: ``boxes [N, 4]`` float32 xyxy fractions,
``labels [N]`` int64 in ``1..C`` (label ``l`` is ``class_names[l - 1]``; 0 is background),
``difficult [N]`` bool (evaluation ignores difficult objects; training may keep them). Without a
transform the image is a ``[3, H, W]`` uint8 tensor; with one, the transform gets the PIL image
(opened lazily, so it can decide the geometry before the JPEG is decoded) and a generator from
``(seed, epoch, index)``: :class:`ssd_edu.data.items.DetectionFiles`, which COCO's reader shares.

Paper: §3.1 (PASCAL VOC2007; 07+12 training in Table 1).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as ET
import numpy as np
import torch
from defusedxml import DefusedXmlException
from torch import Tensor

from ssd_edu.data.items import DetectionFiles

VOC_CLASSES: tuple[str, ...] = (
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)


def _text(node: Element, tag: str, where: str) -> str:
    child = node.find(tag)
    if child is None or child.text is None or not child.text.strip():
        raise ValueError(f"{where}: missing <{tag}>")
    return child.text.strip()


def _number(node: Element, tag: str, where: str) -> float:
    text = _text(node, tag, where)
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{where}: <{tag}> must be a number, got {text!r}") from None
    if not np.isfinite(value):
        raise ValueError(f"{where}: <{tag}> must be finite, got {text!r}")
    return value


def _flag(obj: Element, tag: str) -> bool:
    """``<difficult>1</difficult>`` -> True; absent or 0 -> False."""
    node = obj.find(tag)
    return node is not None and (node.text or "").strip() not in ("", "0")


def _parse(path: Path) -> Element:
    """The XML's root element, or an error naming the file."""
    try:
        return ET.parse(path).getroot()
    except DefusedXmlException as e:  # entities, DTDs: refused, never expanded
        raise ValueError(f"{path}: refused to parse ({type(e).__name__}: {e})") from None
    except ParseError as e:
        raise ValueError(f"{path}: malformed XML ({e})") from None


def parse_annotation(path: str | Path, class_names: Sequence[str] = VOC_CLASSES) -> dict:
    """Read one VOC XML annotation.

    Names and numbers may carry surrounding whitespace; coordinates may be written as decimals.
    ``<difficult>`` and ``<truncated>`` default to 0 when absent.

    Args:
        path: the XML file.
        class_names: the object classes; label ``l`` is ``class_names[l - 1]``.

    Returns:
        A dict with ``boxes [N, 4]`` float32 xyxy fractions, ``labels [N]`` int64 in 1..C,
        ``difficult [N]`` bool, ``truncated [N]`` bool, ``width``, ``height`` (pixels) and
        ``filename`` (from the XML; may be absent, then ``None``).

    Raises:
        ValueError: malformed XML, no valid ``<size>``, an object without a name or a box, or a
            class name not in ``class_names`` (the message names the file and the object).

    Warns:
        UserWarning: a degenerate box (``xmax < xmin`` or ``ymax < ymin``, or nothing left after
            clipping to the image); that object is dropped.

    Paper: §3.1 (PASCAL VOC annotations).
    """
    path = Path(path)
    root = _parse(path)
    size = root.find("size")
    if size is None:
        raise ValueError(f"{path}: missing <size> (image width and height)")
    width, height = _number(size, "width", f"{path}"), _number(size, "height", f"{path}")
    if width <= 0 or height <= 0:
        raise ValueError(f"{path}: <size> must be positive, got width={width}, height={height}")
    index = {name: i + 1 for i, name in enumerate(class_names)}
    boxes, labels, difficult, truncated = [], [], [], []
    for k, obj in enumerate(root.iter("object")):
        name = _text(obj, "name", f"{path}: object {k}")
        where = f"{path}: object {k} ({name!r})"
        if name not in index:
            raise ValueError(
                f"{where}: unknown class {name!r}; class_names has {len(class_names)} names "
                f"({', '.join(list(class_names)[:5])}{', ...' if len(class_names) > 5 else ''}); "
                "pass your dataset's class list as class_names"
            )
        box = obj.find("bndbox")
        if box is None:
            raise ValueError(f"{where}: missing <bndbox>")
        xmin, ymin, xmax, ymax = (_number(box, t, where) for t in ("xmin", "ymin", "xmax", "ymax"))
        # 1-based inclusive pixels -> edges of the covered interval, as fractions
        x1, x2 = (xmin - 1) / width, xmax / width
        y1, y2 = (ymin - 1) / height, ymax / height
        clipped = [min(max(v, 0.0), 1.0) for v in (x1, y1, x2, y2)]
        if not (clipped[2] > clipped[0] and clipped[3] > clipped[1]):
            warnings.warn(
                f"{where}: degenerate box xmin={xmin:g} ymin={ymin:g} xmax={xmax:g} "
                f"ymax={ymax:g} in a {width:g}x{height:g} image; object dropped",
                stacklevel=2,
            )
            continue
        boxes.append(clipped)
        labels.append(index[name])
        difficult.append(_flag(obj, "difficult"))
        truncated.append(_flag(obj, "truncated"))
    filename = root.find("filename")
    return {
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "labels": torch.tensor(labels, dtype=torch.int64),
        "difficult": torch.tensor(difficult, dtype=torch.bool),
        "truncated": torch.tensor(truncated, dtype=torch.bool),
        "width": int(width),
        "height": int(height),
        "filename": filename.text.strip() if filename is not None and filename.text else None,
    }


Transform = Callable[..., tuple[Tensor, Tensor, Tensor, Tensor]]


class VOCDetection(DetectionFiles):
    """PASCAL VOC detection over a VOCdevkit folder (one year or the union of several).

    Args:
        root: the VOCdevkit folder, holding ``VOC2007/``, ``VOC2012/``, ...
        years: which ``VOC<year>`` folders to read; ``("2007", "2012")`` is the paper's 07+12.
        image_set: the list in ``ImageSets/Main/`` (``trainval``, ``test``, ``train``, ``val``).
        keep_difficult: keep objects marked difficult (evaluation needs them to ignore them).
        transform: ``transform(image, boxes, labels, difficult, generator=g)`` on the PIL image,
            e.g. ``TrainTransform`` (training runs: ``ssd_edu.fast.augment.FastTrainTransform``);
            ``None`` returns the image as a ``[3, H, W]`` uint8 tensor.
        class_names: the object classes of the dataset (label ``l`` is ``class_names[l - 1]``).
        seed: base seed of the augmentation; item ``i`` in epoch ``e`` uses
            ``item_generator(seed, e, i)``. Call :meth:`set_epoch` before each epoch; DataLoader
            workers copy the dataset when an epoch's iterator starts, so this reaches them
            (not with ``persistent_workers=True``, whose copies keep the first epoch).

    Attributes:
        image_ids: ``"VOC2007/000005"``-style names, one per item, in item order.

    Paper: §3.1, Table 1 (07+12 = VOC2007 trainval + VOC2012 trainval).
    """

    def __init__(
        self,
        root: str | Path,
        years: Sequence[str] = ("2007",),
        image_set: str = "trainval",
        keep_difficult: bool = True,
        transform: Transform | None = None,
        class_names: Sequence[str] = VOC_CLASSES,
        seed: int = 0,
    ) -> None:
        self.root = Path(root)
        if isinstance(years, str):
            years = (years,)
        if len(years) == 0:
            raise ValueError("years must name at least one VOC year, got ()")
        if len(set(class_names)) != len(class_names) or len(class_names) == 0:
            raise ValueError(f"class_names must be distinct, non-empty names, got {class_names}")
        self.years, self.image_set = tuple(str(y) for y in years), image_set
        self.keep_difficult, self.transform = keep_difficult, transform
        self.class_names = tuple(class_names)
        self.seed, self.epoch = int(seed), 0
        self._items: list[tuple[Path, str]] = []  # (VOC<year> folder, image id)
        for year in self.years:
            folder = self.root / f"VOC{year}"
            listing = folder / "ImageSets" / "Main" / f"{image_set}.txt"
            if not listing.is_file():
                raise FileNotFoundError(
                    f"{listing} not found: root must be the VOCdevkit folder holding VOC{year}/ "
                    f"with ImageSets/Main/{image_set}.txt"
                )
            ids = [line.split()[0] for line in listing.read_text().splitlines() if line.strip()]
            self._items += [(folder, i) for i in ids]
        self.image_ids = [f"{folder.name}/{i}" for folder, i in self._items]
        self._annotations: dict[int, dict] = {}  # index -> parsed annotation, filled on first use

    def __len__(self) -> int:
        return len(self._items)

    def annotation(self, index: int) -> dict:
        """The parsed annotation of item ``index`` (no image decoded): see :func:`parse_annotation`.

        Difficult objects are dropped here when ``keep_difficult`` is False. Each process parses
        a file once and keeps the result: a training epoch re-reads every annotation, and the XML
        parse costs about a tenth of an augmented item.
        """
        cached = self._annotations.get(index)
        if cached is None:
            folder, image_id = self._items[index]
            path = folder / "Annotations" / f"{image_id}.xml"
            if not path.is_file():
                raise FileNotFoundError(f"annotation {path} not found (image id {image_id!r})")
            cached = parse_annotation(path, self.class_names)
            if not self.keep_difficult:
                keep = ~cached["difficult"]
                for key in ("boxes", "labels", "difficult", "truncated"):
                    cached[key] = cached[key][keep]
            self._annotations[index] = cached
        return dict(cached)  # a caller replacing a field does not change the cache

    def image_path(self, index: int) -> Path:
        folder, image_id = self._items[index]
        return folder / "JPEGImages" / f"{image_id}.jpg"


def voc_object_names(
    root: str | Path, years: Sequence[str] = ("2007",), image_set: str = "trainval"
) -> dict[str, str]:
    """The class names that the objects of a VOC list use, each with where it is first seen.

    A dataset of one's own in the VOC layout has its own classes: the training command line takes
    the sorted names of the training list as ``class_names`` (for PASCAL VOC they are
    ``VOC_CLASSES``, which is in alphabetical order), and checks the test list against them.

    Args:
        root, years, image_set: as for :class:`VOCDetection`.

    Returns:
        ``{name: "<annotation file> (object k)"}``, in order of first appearance.

    Raises:
        FileNotFoundError: the list or one of its annotations is missing (named).
        ValueError: malformed XML or an object without a ``<name>`` (file and object named).

    Paper: §3.1 (VOC's 20 classes); other datasets in the layout bring their own.
    """
    listed = VOCDetection(root, years=years, image_set=image_set)
    names: dict[str, str] = {}
    for folder, image_id in listed._items:
        path = folder / "Annotations" / f"{image_id}.xml"
        if not path.is_file():
            raise FileNotFoundError(
                f"annotation {path} not found (image id {image_id!r} of {image_set}.txt)"
            )
        for k, obj in enumerate(_parse(path).iter("object")):
            names.setdefault(_text(obj, "name", f"{path}: object {k}"), f"{path} (object {k})")
    return names
