"""Drawing for the notebooks, one module per topic, in the order of the walkthrough.

- :mod:`~ssd_edu.viz.core`: shared helpers every topic uses (``is_smoke``, ``save_figure``,
  ``class_colour``, ``sample_photo``, ``show_image``, ``draw_boxes``, ``draw_priors``,
  ``square_image``).
- :mod:`~ssd_edu.viz.priors`: default boxes of a cell and per feature map (notebook 01).
- :mod:`~ssd_edu.viz.matching`: overlap heat maps and matched default boxes (notebook 02).
- :mod:`~ssd_edu.viz.mining`: the negatives hard negative mining keeps (notebook 03).
- :mod:`~ssd_edu.viz.loss`: Smooth L1 against L1 and L2 (notebook 04).
- :mod:`~ssd_edu.viz.nms`: detections before and after NMS (notebook 05).
- :mod:`~ssd_edu.viz.model`: the architecture, fc6/fc7 decimation, receptive fields (notebook 06).
- :mod:`~ssd_edu.viz.data`: the augmentation pipeline and the shapes data set (notebook 07).
- :mod:`~ssd_edu.viz.evaluate`: PR curves, AP interpolation, TP/FP verdicts (notebook 08).
- :mod:`~ssd_edu.viz.training`: training curves and detections on images (notebooks 09, 10).
- :mod:`~ssd_edu.viz.coverage`: object sizes against the default boxes, coverage per size.

Every name is re-exported here, so ``from ssd_edu.viz import draw_boxes`` works whichever module
holds it.
"""

from ssd_edu.viz.core import (
    FIGURES_DIR,
    class_colour,
    draw_boxes,
    draw_priors,
    is_smoke,
    sample_photo,
    save_figure,
    show_image,
    square_image,
)
from ssd_edu.viz.coverage import plot_coverage
from ssd_edu.viz.data import (
    plot_augmentation_steps,
    plot_augmented_grid,
    plot_deferred_photometric,
    plot_min_iou_behaviour,
    plot_shapes_samples,
    show_augmentation,
)
from ssd_edu.viz.evaluate import (
    draw_verdicts,
    plot_ap_interpolation,
    plot_pr_curves,
    pr_curves_figure,
)
from ssd_edu.viz.loss import plot_smooth_l1
from ssd_edu.viz.matching import (
    draw_matches,
    match_decisions,
    plot_iou_maps,
    plot_match_table,
    plot_matches,
)
from ssd_edu.viz.mining import draw_mined_negatives, plot_mined_negatives
from ssd_edu.viz.model import (
    architecture_blocks,
    draw_fc6_decimation,
    plot_architecture,
    plot_receptive_fields,
    receptive_field_figure,
)
from ssd_edu.viz.nms import plot_nms
from ssd_edu.viz.priors import (
    cell_at,
    cell_box_names,
    plot_cell_default_boxes,
    plot_default_boxes_per_map,
)
from ssd_edu.viz.training import plot_detections_above, plot_detections_grid, plot_training_log

__all__ = [
    "FIGURES_DIR",
    "architecture_blocks",
    "cell_at",
    "cell_box_names",
    "class_colour",
    "draw_boxes",
    "draw_fc6_decimation",
    "draw_matches",
    "draw_mined_negatives",
    "match_decisions",
    "draw_priors",
    "draw_verdicts",
    "is_smoke",
    "plot_ap_interpolation",
    "plot_architecture",
    "plot_augmentation_steps",
    "plot_augmented_grid",
    "plot_coverage",
    "plot_cell_default_boxes",
    "plot_default_boxes_per_map",
    "plot_detections_above",
    "plot_detections_grid",
    "plot_iou_maps",
    "plot_match_table",
    "plot_matches",
    "plot_min_iou_behaviour",
    "plot_mined_negatives",
    "plot_nms",
    "plot_pr_curves",
    "plot_receptive_fields",
    "plot_deferred_photometric",
    "plot_shapes_samples",
    "plot_smooth_l1",
    "plot_training_log",
    "pr_curves_figure",
    "receptive_field_figure",
    "sample_photo",
    "save_figure",
    "show_augmentation",
    "show_image",
    "square_image",
]
