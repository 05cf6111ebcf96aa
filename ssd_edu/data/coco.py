"""COCO-format detection data: one JSON annotation file and a folder of images (§3.4).

The file (cocodataset.org, "Data format", detection part) holds three lists::

    {"images":      [{"id", "file_name", "width", "height"}, ...],
     "annotations": [{"id", "image_id", "category_id", "bbox": [x, y, w, h], "iscrowd"}, ...],
     "categories":  [{"id", "name"}, ...]}

Other keys (``info``, ``licenses``, ``segmentation``, ``area``) are read past; the standard
library's ``json`` reads it, so pycocotools is not needed. Labels: the categories sorted by id
become labels ``1..C`` (COCO's 80 ids run from 1 to 90 with gaps), with ``class_names[l - 1]`` the
name and ``category_ids[l - 1]`` the id back (for ``ssd_edu.coco_json.detections_to_coco_json``).

Boxes: ``bbox`` is the top-left corner and the size in pixels, continuous coordinates (no +1 as in
VOC), so a box covers ``x..x + w`` of the width ``W``: ``x1 = x / W``, ``x2 = (x + w) / W``
(likewise heights). A box partly outside the image is clipped to [0, 1]; a box with ``w <= 0`` or
``h <= 0``, or with nothing inside the image, is dropped with a warning naming the file, the
annotation id and the image id. Crowd regions (``iscrowd: 1``, one region over a group of objects)
are kept and marked in the ``difficult`` column: evaluation ignores them, as it ignores VOC's
difficult objects. Images without annotations are kept, with ``N = 0``.

Items, transforms and seeding are VOCDetection's (:class:`ssd_edu.data.items.DetectionFiles`):
``(image, boxes [N, 4] float32 xyxy fractions, labels [N] int64 in 1..C, difficult [N] bool)``.
Images come in id order, the order pycocotools evaluates them in.

Paper: §3.4 (COCO: trainval35k for training, test-dev for testing); the file format is COCO's.
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import Tensor

from ssd_edu.data.items import DetectionFiles

Transform = Callable[..., tuple[Tensor, Tensor, Tensor, Tensor]]
_KEYS = ("images", "annotations", "categories")


class COCODetection(DetectionFiles):
    """Detection items from a COCO-format JSON file and its folder of images.

    Args:
        images_dir: the folder that each image's ``file_name`` is relative to.
        annotation_json: the COCO-format file.
        image_ids: keep only these images (e.g. a held-out split, :func:`split_image_ids`);
            ``None`` keeps them all. Either way the items are in id order.
        keep_crowd: keep crowd regions (marked difficult); False drops them from the items.
        transform, seed: as for ``VOCDetection``: ``transform(image, boxes, labels, difficult,
            generator=item_generator(seed, epoch, index))``; call :meth:`set_epoch` each epoch.

    Attributes:
        image_ids: COCO image ids (ints), one per item, in item order.
        class_names, category_ids: the category names and ids of labels ``1..C``.

    Raises:
        FileNotFoundError: no such annotation file.
        ValueError: not JSON, not COCO (a missing key), a malformed record, a duplicate id, an
            annotation of an unknown image or category; the message names file, record and ids.

    Paper: §3.4 (COCO).
    """

    def __init__(
        self,
        images_dir: str | Path,
        annotation_json: str | Path,
        image_ids: Sequence[int] | None = None,
        keep_crowd: bool = True,
        transform: Transform | None = None,
        seed: int = 0,
    ) -> None:
        self.images_dir, self.annotation_json = Path(images_dir), Path(annotation_json)
        self.keep_crowd, self.transform = keep_crowd, transform
        self.seed, self.epoch = int(seed), 0
        data = _load(self.annotation_json)
        where = str(self.annotation_json)
        categories = _categories(data["categories"], where)  # [(id, name)] in id order
        self.category_ids = tuple(c for c, _ in categories)
        self.class_names = tuple(name for _, name in categories)
        self._images = _images(data["images"], where)  # id -> (file_name, width, height)
        label = {c: i + 1 for i, c in enumerate(self.category_ids)}
        self._objects = _annotations(data["annotations"], where, self._images, label)
        self.image_ids = sorted(self._images) if image_ids is None else _chosen(image_ids, self)

    def __len__(self) -> int:
        return len(self.image_ids)

    def annotation(self, index: int) -> dict:
        """The annotation of item ``index`` (no image decoded).

        Returns:
            A dict with ``boxes [N, 4]`` float32 xyxy fractions, ``labels [N]`` int64 in 1..C,
            ``difficult [N]`` bool and ``iscrowd [N]`` bool (the same flags), ``annotation_ids
            [N]`` int64, ``width``, ``height`` (pixels, from the file), ``filename`` and
            ``image_id``. Crowd regions are left out when ``keep_crowd`` is False.
        """
        image_id = self.image_ids[index]
        file_name, width, height = self._images[image_id]
        objects = [o for o in self._objects.get(image_id, []) if self.keep_crowd or not o[3]]
        crowd = torch.tensor([o[3] for o in objects], dtype=torch.bool)
        return {
            "boxes": torch.tensor([o[1] for o in objects], dtype=torch.float32).reshape(-1, 4),
            "labels": torch.tensor([o[2] for o in objects], dtype=torch.int64),
            "difficult": crowd,
            "iscrowd": crowd.clone(),
            "annotation_ids": torch.tensor([o[0] for o in objects], dtype=torch.int64),
            "width": width,
            "height": height,
            "filename": file_name,
            "image_id": image_id,
        }

    def image_path(self, index: int) -> Path:
        return self.images_dir / self._images[self.image_ids[index]][0]


def split_image_ids(
    image_ids: Sequence[int], fraction: float, seed: int = 0
) -> tuple[list[int], list[int]]:
    """Hold out ``fraction`` of the images, the same ones on every machine and run.

    The ids are ranked by a hash of ``(seed, id)`` and the first ``round(fraction * n)`` are held
    out; the hash, not a random generator, makes the split independent of the library versions and
    of the order the ids come in.

    Args:
        image_ids: the images to split (e.g. ``COCODetection(...).image_ids``).
        fraction: the share to hold out, in (0, 1).
        seed: another seed gives another split.

    Returns:
        ``(kept, held_out)``, each sorted, together every id once.

    Paper: not in the paper (§3.4 uses COCO's own splits); it gives a validation set to a
    dataset that comes as one file.
    """
    ids = sorted(image_ids)
    if len(set(ids)) != len(ids):
        raise ValueError("image_ids must be distinct")
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must lie in (0, 1), got {fraction}")
    n_held = round(fraction * len(ids))
    if not 0 < n_held < len(ids):
        raise ValueError(
            f"holding out {fraction} of {len(ids)} images leaves {n_held} held out and "
            f"{len(ids) - n_held} kept; both need at least one"
        )
    rank = sorted(ids, key=lambda i: hashlib.sha256(f"{seed}:{i}".encode()).hexdigest())
    held = set(rank[:n_held])
    return [i for i in ids if i not in held], sorted(held)


def _load(path: Path) -> dict:
    """The file's top level, checked to be COCO's three lists."""
    if not path.is_file():
        raise FileNotFoundError(f"annotation file {path} not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not a JSON file ({e})") from None
    if not isinstance(data, dict):
        raise ValueError(
            f"{path}: not a COCO detection file: the top level is a {type(data).__name__}, not an "
            "object with 'images', 'annotations' and 'categories'"
        )
    for key in _KEYS:
        if key not in data:
            raise ValueError(
                f"{path}: not a COCO detection file: no {key!r} key (a COCO file has 'images', "
                "'annotations' and 'categories')"
            )
        if not isinstance(data[key], list):
            raise ValueError(f"{path}: {key!r} must be a list, got {type(data[key]).__name__}")
    return data


def _field(record, key: str, where: str, kind: str):
    """``record[key]``, checked: ``kind`` is "id" (an integer), "size" (a positive number),
    "name" (a non-empty string) or "flag" (0 or 1, absent meaning 0)."""
    if not isinstance(record, dict):
        raise ValueError(f"{where}: must be an object, got {type(record).__name__}")
    if key not in record:
        if kind == "flag":
            return False
        raise ValueError(f"{where}: missing {key!r}")
    value = record[key]
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "id" and not (number and float(value).is_integer()):
        raise ValueError(f"{where}: {key!r} must be an integer id, got {value!r}")
    if kind == "size" and not (number and math.isfinite(value) and value > 0):
        raise ValueError(f"{where}: {key!r} must be a positive number of pixels, got {value!r}")
    if kind == "name" and not (isinstance(value, str) and value):
        raise ValueError(f"{where}: {key!r} must be a non-empty string, got {value!r}")
    if kind == "flag" and value not in (0, 1):  # True and False are 1 and 0
        raise ValueError(f"{where}: {key!r} must be 0 or 1, got {value!r}")
    return int(value) if kind in ("id", "flag") else value


def _unique_ids(records: list, list_name: str, where: str) -> list[int]:
    """Each record's ``id``, refusing a repeated one (naming both records)."""
    first: dict[int, int] = {}
    for k, record in enumerate(records):
        i = _field(record, "id", f"{where}: {list_name}[{k}]", "id")
        if i in first:
            raise ValueError(
                f"{where}: {list_name}[{k}] has id {i}, already the id of {list_name}[{first[i]}]"
            )
        first[i] = k
    return list(first)


def _categories(records: list, where: str) -> list[tuple[int, str]]:
    if not records:
        raise ValueError(f"{where}: 'categories' is empty; a detection file names its classes")
    ids = _unique_ids(records, "categories", where)
    names = [_field(r, "name", f"{where}: categories[{k}]", "name") for k, r in enumerate(records)]
    for k, name in enumerate(names):
        if names.index(name) != k:
            raise ValueError(
                f"{where}: categories[{k}] (id {ids[k]}) has the name {name!r} of "
                f"categories[{names.index(name)}]; class names must be distinct"
            )
    return sorted(zip(ids, names))


def _images(records: list, where: str) -> dict[int, tuple[str, int | float, int | float]]:
    out = {}
    for k, (i, record) in enumerate(zip(_unique_ids(records, "images", where), records)):
        at = f"{where}: images[{k}] (id {i})"
        size = (_field(record, "width", at, "size"), _field(record, "height", at, "size"))
        out[i] = (_field(record, "file_name", at, "name"), *size)
    return out


def _annotations(records: list, where: str, images: dict, label: dict[int, int]) -> dict:
    """Per image id, its objects ``(annotation id, [x1, y1, x2, y2] fractions, label, crowd)``
    in file order; degenerate boxes dropped with a warning."""
    out: dict[int, list] = {}
    for k, (a, record) in enumerate(zip(_unique_ids(records, "annotations", where), records)):
        at = f"{where}: annotation id {a} (annotations[{k}])"
        image_id = _field(record, "image_id", at, "id")
        if image_id not in images:
            raise ValueError(f"{at}: image id {image_id} is not in 'images'")
        category = _field(record, "category_id", at, "id")
        if category not in label:
            raise ValueError(f"{at}: category id {category} is not in 'categories'")
        at = f"{at}, image id {image_id}"
        box = _box(record, at, *images[image_id][1:])
        if box is not None:
            crowd = bool(_field(record, "iscrowd", at, "flag"))
            out.setdefault(image_id, []).append((a, box, label[category], crowd))
    return out


def _box(record: dict, where: str, width: float, height: float) -> list[float] | None:
    """``bbox`` as xyxy fractions clipped to the image, or None (warned) when nothing is left."""
    bbox = record.get("bbox")
    if not (
        isinstance(bbox, list)
        and len(bbox) == 4
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in bbox)
        and all(math.isfinite(v) for v in bbox)
    ):
        raise ValueError(f"{where}: 'bbox' must be [x, y, w, h], four finite numbers, got {bbox!r}")
    x, y, w, h = bbox
    corners = (x / width, y / height, (x + w) / width, (y + h) / height)
    x1, y1, x2, y2 = (min(max(v, 0.0), 1.0) for v in corners)
    if w <= 0 or h <= 0 or not (x2 > x1 and y2 > y1):
        why = "non-positive size" if w <= 0 or h <= 0 else "nothing inside the image"
        warnings.warn(
            f"{where}: box [x, y, w, h] = {bbox} has {why} in a {width:g}x{height:g} image; "
            "object dropped",
            stacklevel=4,
        )
        return None
    return [x1, y1, x2, y2]


def _chosen(image_ids: Sequence[int], dataset: COCODetection) -> list[int]:
    """The requested images, checked to be in the file and distinct, in id order."""
    chosen = set()
    for k, i in enumerate(image_ids):
        if i not in dataset._images:
            raise ValueError(f"image_ids[{k}] = {i!r} is not an image of {dataset.annotation_json}")
        if i in chosen:
            raise ValueError(f"image_ids[{k}] = {i!r} is listed twice")
        chosen.add(i)
    return sorted(chosen)
