"""The SSD network, one idea per module (§2.1, fig. 2; §3).

- :mod:`ssd_edu.model.ssd`: :class:`SSD`, the source maps and their ``(c + 4) k`` heads, output in
  default-box order; the factories :func:`ssd300`, :func:`ssd512`, :func:`ssd_small`.
- :mod:`ssd_edu.model.backbones`: VGG16 to fc7 (atrous), :class:`L2Norm` on conv4_3, the extra
  layers; :class:`SmallBackbone`, the CPU stand-in.
- :mod:`ssd_edu.model.vgg_weights`: :func:`load_vgg16_backbone`, ImageNet VGG16 weights (torchvision
  or Caffe-converted) into the base network.
- :mod:`ssd_edu.model.anatomy`: lesson tools, :func:`layer_table`, :func:`receptive_fields`,
  :func:`input_gradient` (the effective receptive field), :func:`freeze_features`.

``from ssd_edu.model import ...`` hands on every public name from where it lives (docs/design.md).
"""

from ssd_edu.model.anatomy import (
    FixedFeatures,
    freeze_features,
    input_gradient,
    layer_table,
    mass_side,
    receptive_fields,
    support_side,
)
from ssd_edu.model.backbones import VGG16_CONV_NAMES, L2Norm, SmallBackbone, VGG16Backbone
from ssd_edu.model.ssd import SSD, flatten_head, ssd300, ssd512, ssd_small, unwrap
from ssd_edu.model.vgg_weights import (
    CAFFE_BGR_MEAN,
    LoadSummary,
    caffe_conv1_1_to_torchvision,
    load_vgg16_backbone,
)

__all__ = [
    "CAFFE_BGR_MEAN",
    "SSD",
    "VGG16_CONV_NAMES",
    "FixedFeatures",
    "L2Norm",
    "LoadSummary",
    "SmallBackbone",
    "VGG16Backbone",
    "caffe_conv1_1_to_torchvision",
    "flatten_head",
    "freeze_features",
    "input_gradient",
    "layer_table",
    "load_vgg16_backbone",
    "mass_side",
    "receptive_fields",
    "ssd300",
    "ssd512",
    "ssd_small",
    "support_side",
    "unwrap",
]
