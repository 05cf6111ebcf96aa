"""Data for SSD: PASCAL VOC, the paper's augmentation, and synthetic shapes made on the fly.

Every dataset yields ``(image, boxes, labels, difficult)``: ``image [3, S, S]`` float32 RGB
normalised by ``IMAGENET_MEAN``/``IMAGENET_STD`` (after a transform), ``boxes [N, 4]`` float32 xyxy
fractions, ``labels [N]`` int64 in ``1..C``, ``difficult [N]`` bool. :func:`collate_detections`
batches them for a DataLoader. For GPU training, ``TrainTransform(defer_photometric=True)`` yields
``uint8`` images and a fifth element, the photometric work that :func:`finish_batch` does on the
device.
"""

from ssd_edu.data.batch_photometric import PIXEL_PARAMS, finish_batch
from ssd_edu.data.shapes import SHAPE_CLASSES, ShapesDataset, collate_detections, render_shapes
from ssd_edu.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    MIN_IOUS,
    Augmentation,
    EvalTransform,
    Photometric,
    TrainTransform,
    denormalize,
    item_generator,
    normalize,
    photometric_distort,
    sample_patch,
    to_pil,
)
from ssd_edu.data.voc import VOC_CLASSES, VOCDetection, make_toy_voc, parse_annotation

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "MIN_IOUS",
    "PIXEL_PARAMS",
    "SHAPE_CLASSES",
    "VOC_CLASSES",
    "Augmentation",
    "EvalTransform",
    "Photometric",
    "ShapesDataset",
    "TrainTransform",
    "VOCDetection",
    "collate_detections",
    "denormalize",
    "finish_batch",
    "item_generator",
    "make_toy_voc",
    "normalize",
    "parse_annotation",
    "photometric_distort",
    "render_shapes",
    "sample_patch",
    "to_pil",
]
