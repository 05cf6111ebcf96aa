"""The figures quiz questions ask for, computed by the library so they cannot drift from it.

A ``number`` question of the bank names one of these functions (``"compute": "name"``) instead of
writing its answer down. Each function builds the case the question describes and asks the
library, so a change to a default, a configuration or a rule changes the answer with it.

Paper: the section each figure belongs to is named in its question's explanation.
"""

from __future__ import annotations

import math

import torch

from ssd_edu.boxes import encode
from ssd_edu.priors import SSD300_VOC, PriorConfig, cell_boxes_wh, paper_scales


def ssd300_default_boxes() -> int:
    """SSD300's default boxes over its six maps (§2.2, Table: 8732)."""
    return SSD300_VOC.num_priors


def ssd300_without_ratio_3() -> int:
    """SSD300's default boxes if no map used the 3:1 and 1:3 ratios."""
    no_three = tuple(tuple(a for a in ratios if a != 3) for ratios in SSD300_VOC.aspect_ratios)
    return _with_ratios(no_three).num_priors


def ssd300_squares_only() -> int:
    """SSD300's default boxes with only the two squares per cell."""
    return _with_ratios(((),) * len(SSD300_VOC.feature_maps)).num_priors


def ssd300_largest_map_boxes() -> int:
    """Default boxes on SSD300's 38x38 map (4 per cell)."""
    return SSD300_VOC.boxes_per_map[0]


def boxes_per_cell_ratios_2_3() -> int:
    """Default boxes in one cell of a map with aspect ratios {2, 3}: 2 squares + 2 per ratio."""
    return len(cell_boxes_wh(SSD300_VOC, 1))


def third_scale_of_six() -> float:
    """``s_3`` of eq. 4 with m = 6 maps, s_min = 0.2, s_max = 0.9."""
    return paper_scales(6, 0.2, 0.9)[2]


def width_ratio_2_at_02() -> float:
    """Width of the 2:1 default box at scale 0.2: ``s_k sqrt(a_r)``."""
    return 0.2 * math.sqrt(2)


def filters_per_location_voc() -> int:
    """``(c + 4) k`` for VOC's c = 21 classes (background included) and k = 6 boxes."""
    return (21 + 4) * 6


def encoded_centre_offset() -> float:
    """``g_cx`` of an object centred at 0.55 against a default box centred at 0.5, 0.2 wide."""
    target = torch.tensor([[0.45, 0.4, 0.65, 0.6]])  # centre (0.55, 0.5), size (0.2, 0.2)
    prior = torch.tensor([[0.5, 0.5, 0.2, 0.2]])
    return float(encode(target, prior)[0, 0])


def encoded_width_offset() -> float:
    """``g_w`` of an object 0.4 wide against a default box 0.2 wide (variance 0.2)."""
    target = torch.tensor([[0.3, 0.4, 0.7, 0.6]])  # width 0.4, height 0.2
    prior = torch.tensor([[0.5, 0.5, 0.2, 0.2]])
    return float(encode(target, prior)[0, 2])


def negatives_for_seven_positives() -> int:
    """Negatives hard negative mining keeps in an image with 7 positives of 8732 default boxes."""
    from ssd_edu.mining import hard_negative_mask

    positive = torch.zeros(1, SSD300_VOC.num_priors, dtype=torch.bool)
    positive[0, :7] = True
    loss = torch.rand(1, SSD300_VOC.num_priors, generator=torch.Generator().manual_seed(0))
    return int(hard_negative_mask(loss, positive, 3).sum())


def smooth_l1_at(x: float) -> float:
    from ssd_edu.loss import smooth_l1

    return float(smooth_l1(torch.tensor([x]))[0])


def smooth_l1_half() -> float:
    """Smooth L1 of a difference of 0.5 (the quadratic part)."""
    return smooth_l1_at(0.5)


def smooth_l1_three() -> float:
    """Smooth L1 of a difference of 3 (the linear part)."""
    return smooth_l1_at(3.0)


def nms_kept_of_three() -> int:
    """Boxes NMS keeps at 0.45 of A (0.9), B overlapping A by 0.6 (0.8) and C apart (0.7)."""
    from ssd_edu.nms import nms

    boxes = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 0.6], [2.0, 2.0, 3.0, 3.0]])
    return len(nms(boxes, torch.tensor([0.9, 0.8, 0.7]), 0.45))


def ssd300_parameters() -> int:
    """Parameters of SSD300 for the 21 VOC classes."""
    from ssd_edu.model import ssd300

    with torch.device("meta"):  # only the shapes are needed
        model = ssd300(21)
    return sum(p.numel() for p in model.parameters())


def ssd300_first_map_side() -> int:
    """Side of SSD300's first source map (conv4_3) for a 300-pixel input."""
    return SSD300_VOC.feature_maps[0]


def min_iou_choices() -> int:
    """Choices of the patch sampler's minimum IoU, "no constraint" included."""
    from ssd_edu.data.geometry import MIN_IOUS

    return len(MIN_IOUS)


def precision_after_tp_fp_tp() -> float:
    """Precision after three detections judged TP, FP, TP."""
    return 2 / 3


def coco_thresholds() -> int:
    """IoU thresholds of COCO-style AP (0.50, 0.55, ..., 0.95)."""
    from ssd_edu.evaluate import COCO_IOU_THRESHOLDS

    return len(COCO_IOU_THRESHOLDS)


def warmup_start_factor() -> float:
    """``lr_factor`` at iteration 0 of the small CPU preset (the warm-up's first step)."""
    from ssd_edu.config import TrainConfig, lr_factor

    return lr_factor(TrainConfig.shapes_cpu(), 0)


def released_schedule_iterations() -> int:
    """Iterations of the released SSD300 VOC07+12 schedule (the recipe's default)."""
    from ssd_edu.config import TrainConfig

    return TrainConfig().max_iters


def lr_after_first_step() -> float:
    """SSD300's learning rate after the first step of its schedule."""
    from ssd_edu.config import TrainConfig, lr_factor

    cfg = TrainConfig()
    return cfg.lr * lr_factor(cfg, cfg.lr_steps[0])


def coco_bbox_right_edge() -> float:
    """``x2`` of COCO's ``bbox`` [20, 30, 40, 10] in a 200 x 100 image, as COCODetection reads."""
    return _read_coco([{"id": 1, "name": "thing"}], [20, 30, 40, 10])["boxes"][0, 2].item()


def label_of_category_7() -> int:
    """The label COCODetection gives category id 7 of the ids 7, 3, 12 (sorted by id, from 1)."""
    categories = [{"id": c, "name": f"class {c}"} for c in (7, 3, 12)]
    return int(_read_coco(categories, [20, 30, 40, 10], category_id=7)["labels"][0])


def small_model_smallest_box() -> float:
    """Side in pixels of the small model's smallest default box (``SSD128_SHAPES``, map 0)."""
    from ssd_edu.priors import SSD128_SHAPES

    return SSD128_SHAPES.min_sizes[0]


def small_object_best_overlap() -> float:
    """Jaccard overlap of an 8-pixel square centred in a 12.8-pixel square (128-pixel input)."""
    from ssd_edu.boxes import box_iou

    obj = torch.tensor([[60.0, 60.0, 68.0, 68.0]]) / 128  # xyxy fractions
    prior = torch.tensor([[57.6, 57.6, 70.4, 70.4]]) / 128
    return float(box_iou(obj, prior)[0, 0])


def coco_recall_levels() -> int:
    """Recall levels of COCO's interpolated precision (0, 0.01, ..., 1)."""
    from ssd_edu.eval_result import COCO_RECALL_LEVELS

    return len(COCO_RECALL_LEVELS)


def coco_small_area() -> float:
    """COCO's upper bound of a small object's area, in square pixels of the original image."""
    from ssd_edu.coco_eval import AREA_RANGES

    return AREA_RANGES["small"][1]


def held_out_of_500() -> int:
    """Images ``split_image_ids`` holds out of 500 with fraction 0.2."""
    from ssd_edu.data.coco import split_image_ids

    return len(split_image_ids(range(1, 501), 0.2)[1])


def _read_coco(categories: list[dict], bbox: list[float], category_id: int | None = None) -> dict:
    """The annotation COCODetection reads from a one-image, one-object file (200 x 100 pixels)."""
    import json
    import tempfile
    from pathlib import Path

    from ssd_edu.data.coco import COCODetection

    category = categories[0]["id"] if category_id is None else category_id
    data = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 200, "height": 100}],
        "annotations": [{"id": 1, "image_id": 1, "bbox": bbox, "category_id": category}],
        "categories": categories,
    }
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "ann.json"
        path.write_text(json.dumps(data), encoding="utf-8")
        return COCODetection(folder, path).annotation(0)


def _with_ratios(ratios: tuple[tuple[float, ...], ...]) -> PriorConfig:
    c = SSD300_VOC
    return PriorConfig(c.image_size, c.feature_maps, c.steps, c.min_sizes, c.max_sizes, ratios)
