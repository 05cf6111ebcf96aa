"""Checkers for the course-assignment exercises, one module per topic.

Each exercise in a notebook is followed by a cell that calls ``check_<name>(your_function)``.
The checkers are looked up lazily so that importing one topic's checker never imports the others.
"""

from __future__ import annotations

import importlib

from ssd_edu.exercises._common import ExerciseFailure

# checker name -> module under ssd_edu.exercises that defines it
_CHECKERS = {
    "check_box_iou": "boxes",
    "check_map_default_boxes": "priors",
    "check_match": "matching",
    "check_encode": "offsets",
    "check_decode": "offsets",
    "check_hard_negative_mask": "mining",
    "check_multibox_loss": "loss",
    "check_nms": "nms",
    "check_average_precision": "evaluate",
    "check_crop_boxes": "data",
    "check_flatten_head": "model",
    "check_learning_rate": "train",
    "check_detect": "detect",
}

__all__ = ["ExerciseFailure", *_CHECKERS]


def __getattr__(name: str):
    if name in _CHECKERS:
        module = importlib.import_module(f"ssd_edu.exercises.{_CHECKERS[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'ssd_edu.exercises' has no attribute {name!r}")
