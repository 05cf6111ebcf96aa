"""Data for SSD: PASCAL VOC, synthetic shapes made on the fly, and the paper's augmentation.

Every dataset yields ``(image, boxes, labels, difficult)``: ``image [3, S, S]`` float32 RGB
normalised by ``IMAGENET_MEAN``/``IMAGENET_STD`` (after a transform), ``boxes [N, 4]`` float32 xyxy
fractions, ``labels [N]`` int64 in ``1..C``, ``difficult [N]`` bool. :func:`collate_detections`
batches them for a DataLoader.

This package is the reference layer (docs/design.md): ``photometric`` (colours, §2.2),
``geometry`` (zoom out, the min-IoU crop, flip, §2.2 and §3.6), ``transforms`` (the steps in the
paper's order), ``shapes``, ``voc`` (PASCAL VOC), ``coco`` (COCO-format files; both hand out items
through ``items``) and ``loader``. The fast forms live in ``ssd_edu.fast`` and are
imported from there: ``ssd_edu.fast.augment.FastTrainTransform`` (zoom out and crop as one window,
optionally ``uint8`` images with the colours left for the device) and
``ssd_edu.fast.photometric.finish_batch`` (those colours, for a whole batch on the device).
"""

from ssd_edu.data.coco import COCODetection, split_image_ids
from ssd_edu.data.geometry import MIN_IOUS, Augmentation, sample_patch
from ssd_edu.data.loader import collate_detections
from ssd_edu.data.photometric import PIXEL_PARAMS, Photometric, photometric_distort
from ssd_edu.data.shapes import SHAPE_CLASSES, ShapesDataset, render_shapes
from ssd_edu.data.toy_voc import FAMILY_NAMES, make_toy_voc, toy_voc_legend
from ssd_edu.data.transforms import EvalTransform, TrainTransform, item_generator, to_pil
from ssd_edu.data.voc import VOC_CLASSES, VOCDetection, parse_annotation, voc_object_names
from ssd_edu.imagenet import IMAGENET_MEAN, IMAGENET_STD, denormalize, normalize

__all__ = [
    "FAMILY_NAMES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "MIN_IOUS",
    "PIXEL_PARAMS",
    "SHAPE_CLASSES",
    "VOC_CLASSES",
    "Augmentation",
    "COCODetection",
    "EvalTransform",
    "Photometric",
    "ShapesDataset",
    "TrainTransform",
    "VOCDetection",
    "collate_detections",
    "denormalize",
    "item_generator",
    "make_toy_voc",
    "normalize",
    "parse_annotation",
    "photometric_distort",
    "render_shapes",
    "sample_patch",
    "split_image_ids",
    "to_pil",
    "toy_voc_legend",
    "voc_object_names",
]
