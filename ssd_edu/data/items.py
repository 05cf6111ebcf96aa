"""How a detection dataset stored as files hands out one item: the part VOC and COCO share.

A dataset on disk is a list of images, each with its annotation. :class:`DetectionFiles` turns item
``index`` into ``(image, boxes, labels, difficult)`` the same way for every layout: it opens the
image lazily (``ssd_edu.data.images.open_image``: a transform can decide the geometry before the
file is decoded), warns when the file's size disagrees with the annotation's, and hands both to
the transform with the generator ``item_generator(seed, epoch, index)``, so that augmentation
depends on the item and the epoch only, not on the worker process nor the order items are drawn
in. Errors name the file, the image id and the dataset index.

A layout (``VOCDetection``, ``COCODetection``) provides ``__len__``, ``image_ids`` (one name per
item), ``annotation(index)`` (a dict with ``boxes [N, 4]`` xyxy fractions, ``labels [N]``,
``difficult [N]``, ``width`` and ``height`` in pixels), ``image_path(index)``, and the attributes
``transform``, ``seed`` and ``epoch``.

Paper: §2.2 (the augmentation each item goes through); the file layouts are the datasets'.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from ssd_edu.data.images import ImageReadError, open_image, to_rgb
from ssd_edu.data.transforms import item_generator


class DetectionFiles(Dataset):
    """Items ``(image, boxes, labels, difficult)`` of a detection dataset stored as files.

    Without a transform the image is a ``[3, H, W]`` uint8 tensor; with one, the result of
    ``transform(image, boxes, labels, difficult, generator=item_generator(seed, epoch, index))``
    on the PIL image. Subclasses provide what the module docstring lists.
    """

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch, so that augmentation differs between epochs but not between runs."""
        self.epoch = int(epoch)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} images")
        index %= len(self)
        ann = self.annotation(index)
        path = self.image_path(index)
        if not path.is_file():
            raise FileNotFoundError(f"image {path} not found (image id {self.image_ids[index]!r})")
        where = f"image id {self.image_ids[index]!r}, dataset index {index}"
        image = open_image(path, where)  # lazy: pixels are decoded when the transform needs them
        if image.size != (ann["width"], ann["height"]):
            warnings.warn(
                f"{path}: image is {image.size[0]}x{image.size[1]} but its annotation says "
                f"{ann['width']}x{ann['height']}; boxes are fractions of the annotated size",
                stacklevel=2,
            )
        boxes, labels, difficult = ann["boxes"], ann["labels"], ann["difficult"]
        if self.transform is None:
            pixels = np.asarray(to_rgb(image, where))  # [H, W, 3]
            chw = torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))
            return chw, boxes, labels, difficult
        g = item_generator(self.seed, self.epoch, index)
        try:
            return self.transform(image, boxes, labels, difficult, generator=g)
        except ImageReadError as e:  # decoded inside the transform: add the item's names
            raise ImageReadError(f"{e} ({where})") from None
