"""The model package: its face hands on every name; the network does not need the data pipeline."""

import importlib
import subprocess
import sys

import ssd_edu.model


def test_every_name_in_all_is_importable():
    namespace: dict = {}
    exec("from ssd_edu.model import *", namespace)
    missing = [name for name in ssd_edu.model.__all__ if name not in namespace]
    assert not missing, f"ssd_edu.model.__all__ lists names it does not give: {missing}"
    # the names docs/design.md promises (notebooks import them)
    promised = {"SSD", "ssd300", "ssd512", "ssd_small", "flatten_head", "L2Norm", "VGG16Backbone",
                "SmallBackbone", "load_vgg16_backbone", "layer_table", "receptive_fields",
                "freeze_features"}  # fmt: skip
    assert promised <= set(ssd_edu.model.__all__)


def test_names_come_from_the_four_modules():
    homes = {
        "ssd": ("SSD", "flatten_head", "ssd300", "ssd512", "ssd_small"),
        "backbones": ("L2Norm", "VGG16Backbone", "SmallBackbone", "VGG16_CONV_NAMES"),
        "vgg_weights": ("CAFFE_BGR_MEAN", "LoadSummary", "load_vgg16_backbone"),
        "anatomy": ("FixedFeatures", "freeze_features", "receptive_fields", "layer_table"),
    }
    for module, names in homes.items():
        mod = importlib.import_module(f"ssd_edu.model.{module}")
        for name in names:
            assert getattr(ssd_edu.model, name) is getattr(mod, name), (module, name)


def test_model_does_not_load_the_data_pipeline():
    code = (
        "import sys, ssd_edu.model, ssd_edu.model.vgg_weights\n"
        "loaded = sorted(m for m in sys.modules if m == 'ssd_edu.data' or "
        "m.startswith('ssd_edu.data.'))\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
