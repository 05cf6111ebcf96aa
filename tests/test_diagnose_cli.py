"""Tests for ssd_edu.cli.diagnose_args: --fit-default-boxes and --diagnose, as a training command
line calls them, and a fitted model's checkpoint keeping its default boxes."""

from __future__ import annotations

import argparse

import torch
from test_diagnose import CHOSEN, NAMES, FixedModel, dataset, val_items

from ssd_edu.checkpoint import load_model, model_spec, save_checkpoint
from ssd_edu.cli import diagnose_args
from ssd_edu.model import ssd_small
from ssd_edu.priors import SSD128_SHAPES, PriorConfig

LARGE_ONLY = PriorConfig.from_scales(128, (16, 8, 4, 2, 1), ((2,), (2, 3), (2, 3), (2,), (2,)),
                                     s_min=0.4, s_max=0.9)  # fmt: skip


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    diagnose_args.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_without_the_flags_nothing_changes_and_nothing_is_printed():
    lines = []
    args = parse()
    assert not args.fit_default_boxes and not args.diagnose
    data = dataset([4, 4])
    assert diagnose_args.prior_config(args, data, SSD128_SHAPES, lines.append) is SSD128_SHAPES
    assert diagnose_args.report(args, data, None, NAMES, None, None, lines.append) is None
    assert lines == []


def test_fit_default_boxes_prints_coverage_before_and_after_and_the_model_builds():
    lines = []
    small = dataset([30, 30], low=0.1, high=0.15)  # far below LARGE_ONLY's smallest box (0.4)
    cfg = diagnose_args.prior_config(parse("--fit-default-boxes"), small, LARGE_ONLY, lines.append)
    assert cfg != LARGE_ONLY and cfg.boxes_per_location == LARGE_ONLY.boxes_per_location
    assert "coverage (IoU >= 0.5) 0.0% -> " in lines[0]
    assert lines[1].startswith("default-box coverage:")
    model = ssd_small(3, cfg=cfg, width=8)
    assert model.priors.shape == (LARGE_ONLY.num_priors, 4)


def test_diagnose_alone_prints_the_coverage_and_keeps_the_default_boxes():
    lines = []
    cfg = diagnose_args.prior_config(parse("--diagnose"), dataset([4, 4]), SSD128_SHAPES,
                                     lines.append)  # fmt: skip
    assert cfg is SSD128_SHAPES and lines[0].startswith("default-box coverage:")


def test_diagnose_reports_the_data_and_the_model():
    lines = []
    val = val_items(CHOSEN)
    result = diagnose_args.report(parse("--diagnose"), val, val, NAMES, SSD128_SHAPES,
                                  FixedModel(CHOSEN, label=2), lines.append)  # fmt: skip
    assert lines[0] == "diagnosis:" and "class confusion" in result.problems
    assert "'cat' as 'dog' 12x" in lines[1]


def test_a_checkpoint_keeps_its_fitted_default_boxes_and_can_be_diagnosed(tmp_path):
    small = dataset([30, 30], low=0.1, high=0.15)
    cfg = diagnose_args.prior_config(parse("--fit-default-boxes"), small, LARGE_ONLY, lambda s: 0)
    model = ssd_small(3, cfg=cfg, width=8)
    path = save_checkpoint(tmp_path / "checkpoint.pt", {
        "model": model.state_dict(), "model_spec": model_spec("ssd_small", model, NAMES),
    })  # fmt: skip
    loaded, spec = load_model(path)
    assert loaded.cfg == cfg
    torch.testing.assert_close(loaded.priors, model.priors)
    val = [(torch.zeros(3, 128, 128), b, lab, torch.zeros(len(lab), dtype=torch.bool))
           for b, lab in small[:2]]  # fmt: skip
    result = diagnose_args.report(parse("--diagnose"), small, val, NAMES, None, path, lambda s: 0)
    assert result.model["evaluation"] is not None


def test_ssd300_takes_fitted_default_boxes_and_its_checkpoint_rebuilds_them():
    import dataclasses

    import pytest

    from ssd_edu.checkpoint import build_model
    from ssd_edu.fit_boxes import fit_default_boxes
    from ssd_edu.priors import SSD300_VOC

    fit = fit_default_boxes(torch.cat([b for b, _ in dataset([40, 40], 0.03, 0.08)]), SSD300_VOC)
    assert fit.changed
    spec = {"name": "ssd300", "num_classes": 3, "prior_cfg": dataclasses.asdict(fit.config)}
    assert build_model(spec).cfg == fit.config
    wrong = dataclasses.replace(SSD300_VOC, feature_maps=(37, 19, 10, 5, 3, 1))
    with pytest.raises(ValueError, match="feature_maps"):
        build_model({**spec, "prior_cfg": dataclasses.asdict(wrong)})
