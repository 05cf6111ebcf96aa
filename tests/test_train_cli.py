"""``python -m ssd_edu.train`` on one's own data: a VOC folder and a COCO JSON, a few iterations.

End to end on tiny toy data (seconds each): the run prints the held-out VOC07 mAP (and COCO's
figures for a COCO file), the checkpoint carries the dataset's class names, and ``python -m
ssd_edu.detect`` prints those names. Then each bad input with its message, before any training.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from ssd_edu.checkpoint import init_weights, load_checkpoint, save_checkpoint
from ssd_edu.cli import datasets, detect
from ssd_edu.cli import train as train_cli
from ssd_edu.coco_eval import SUMMARY_NAMES
from ssd_edu.coco_json import ground_truths_to_coco_json
from ssd_edu.config import SMALL_WIDTH, TrainConfig, shapes_datasets
from ssd_edu.data import SHAPE_CLASSES, VOCDetection, make_toy_voc
from ssd_edu.model import ssd_small
from ssd_edu.priors import SSD128_SHAPES
from ssd_edu.train import train

# 4 shapes in one colour family: four classes of one's own; sorted, they are box, plus, ring, tri
NAMES = ("box", "ring", "tri", "plus")
FEW = ["--iters", "2", "--batch-size", "4", "--no-progress"]


pytestmark = pytest.mark.usefixtures("one_thread", "quick_shapes_start")  # tests/conftest.py


@pytest.fixture(scope="module")
def voc_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("own") / "VOCdevkit"
    make_toy_voc(root, 16, seed=0, class_names=NAMES, max_objects=3)
    return root


def _coco_file(path: Path, ds: VOCDetection, category_ids, names, first_id: int = 1) -> Path:
    """``ds``'s ground truth written as a COCO file (images by file name in JPEGImages/)."""
    anns = [ds.annotation(i) for i in range(len(ds))]
    data = ground_truths_to_coco_json(
        [(a["boxes"], a["labels"], a["difficult"]) for a in anns],
        list(range(first_id, first_id + len(ds))),
        category_ids,
        [(a["width"], a["height"]) for a in anns],
        class_names=names,
        file_names=[ds.image_path(i).name for i in range(len(ds))],
    )
    path.write_text(json.dumps(data))
    return path


@pytest.fixture(scope="module")
def coco_files(voc_root, tmp_path_factory) -> tuple[Path, Path, Path]:
    """``(train.json, val.json, images/)`` with category ids 3, 7, 9, 11 (COCO-style gaps)."""
    folder = tmp_path_factory.mktemp("coco")
    train = VOCDetection(voc_root, image_set="trainval", class_names=NAMES)
    val = VOCDetection(voc_root, image_set="test", class_names=NAMES)
    return (
        _coco_file(folder / "train.json", train, [3, 7, 9, 11], NAMES),
        _coco_file(folder / "val.json", val, [3, 7, 9, 11], NAMES, first_id=100),
        voc_root / "VOC2007" / "JPEGImages",
    )


def _detected_names(checkpoint: Path, image: Path, out: Path, capsys) -> set[str]:
    """The class names ``python -m ssd_edu.detect`` prints for every box on ``image``."""
    capsys.readouterr()
    assert detect.main([str(checkpoint), str(image), "--out", str(out), "--score", "0.0"]) == 0
    lines = capsys.readouterr().out.splitlines()[1:]  # after "<image>: K detection(s) -> ..."
    return {line.split()[0] for line in lines}


def test_voc_folder_trains_the_small_model_with_its_own_classes(voc_root, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["--voc-root", str(voc_root), "--model", "small", "--out-dir", str(out)]
    assert train_cli.main(args + FEW) == 0
    printed = capsys.readouterr().out
    assert "ssd_small on VOC2007 trainval (12 images), tested on VOC2007 test (4 images)" in printed
    assert "classes (4): box, plus, ring, tri" in printed  # sorted names of the annotations
    assert "VOC07 mAP on 4 held-out images:" in printed and "COCO AP" not in printed
    spec = load_checkpoint(out / "checkpoint.pt")["model_spec"]
    assert spec["name"] == "ssd_small" and spec["class_names"] == sorted(NAMES)
    assert spec["num_classes"] == 5 and spec["prior_cfg"]["image_size"] == 128
    image = voc_root / "VOC2007" / "JPEGImages" / "000001.jpg"
    names = _detected_names(out / "checkpoint.pt", image, tmp_path / "drawn", capsys)
    assert names and names <= set(NAMES)  # the dataset's names, not VOC's or the shapes'


def test_classes_option_sets_the_label_order(voc_root, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["--voc-root", str(voc_root), "--model", "small", "--classes", "tri, ring,box,plus"]
    assert train_cli.main(args + ["--out-dir", str(out)] + FEW) == 0
    assert "classes (4): tri, ring, box, plus" in capsys.readouterr().out
    spec = load_checkpoint(out / "checkpoint.pt")["model_spec"]
    assert spec["class_names"] == ["tri", "ring", "box", "plus"]


def test_coco_json_with_a_held_out_fraction(coco_files, tmp_path, capsys):
    train_json, _, images = coco_files
    out = tmp_path / "run"
    args = ["--coco-json", str(train_json), "--images", str(images), "--model", "small"]
    assert train_cli.main(args + ["--val-fraction", "0.25", "--out-dir", str(out)] + FEW) == 0
    printed = capsys.readouterr().out
    assert "held out: 0.25 of the images (3), seed 0" in printed
    assert "VOC07 mAP on 3 held-out images:" in printed
    assert "COCO AP on 3 held-out images (pycocotools' rules): AP " in printed
    assert all(f"{name} " in printed for name in SUMMARY_NAMES)
    spec = load_checkpoint(out / "checkpoint.pt")["model_spec"]
    assert spec["class_names"] == list(NAMES)  # the categories in id order
    names = _detected_names(out / "checkpoint.pt", images / "000002.jpg", tmp_path / "d", capsys)
    assert names and names <= set(NAMES)


def test_coco_json_with_a_held_out_file(coco_files, tmp_path, capsys):
    train_json, val_json, images = coco_files
    args = ["--coco-json", str(train_json), "--images", str(images), "--val-json", str(val_json)]
    assert train_cli.main(args + ["--model", "small", "--out-dir", str(tmp_path)] + FEW) == 0
    printed = capsys.readouterr().out
    assert f"({12} images), held out: {val_json} (4 images)" in printed
    assert "COCO AP on 4 held-out images" in printed


# ------------------------------------------------------------------ bad inputs, each named


def _voc_by_hand(root: Path, objects: dict[str, list[str]], test: bool = True) -> Path:
    """A VOCdevkit folder of XMLs only: ``{image id: [class names of its objects]}``."""
    main = root / "VOC2007" / "ImageSets" / "Main"
    main.mkdir(parents=True)
    (root / "VOC2007" / "Annotations").mkdir()
    for image_id, names in objects.items():
        body = "".join(
            f"<object><name>{n}</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax>"
            "<ymax>5</ymax></bndbox></object>"
            for n in names
        )
        xml = f"<annotation><size><width>9</width><height>9</height></size>{body}</annotation>"
        (root / "VOC2007" / "Annotations" / f"{image_id}.xml").write_text(xml)
    ids = list(objects)
    (main / "trainval.txt").write_text("\n".join(ids[:-1]) + "\n")
    if test:
        (main / "test.txt").write_text(ids[-1] + "\n")
    return root


def _fails(args: list[str], message: str, capsys) -> None:
    assert train_cli.main(args) == 2
    err = capsys.readouterr().err
    assert message in err, err


def test_voc_root_must_be_a_voc_folder(tmp_path, capsys):
    _fails(["--voc-root", str(tmp_path / "nope")], "is not a folder", capsys)
    (tmp_path / "VOCdevkit").mkdir()
    _fails(["--voc-root", str(tmp_path)], "has no VOC<year>/ImageSets/Main/trainval.txt", capsys)
    _fails(["--voc-root", str(tmp_path)], "did you mean", capsys)


def test_voc_root_needs_a_test_list(tmp_path, capsys):
    root = _voc_by_hand(tmp_path / "v", {"a": ["cat"], "b": ["cat"]}, test=False)
    _fails(["--voc-root", str(root), "--model", "small"], "has no test list to evaluate on", capsys)


def test_voc_without_objects_has_no_classes(tmp_path, capsys):
    root = _voc_by_hand(tmp_path / "v", {"a": [], "b": [], "c": []})
    _fails(["--voc-root", str(root), "--model", "small"], "no objects in the training list", capsys)


def test_voc_class_outside_classes_is_named_with_its_file(tmp_path, capsys):
    root = _voc_by_hand(tmp_path / "v", {"a": ["cat", "dog"], "b": ["cat"], "c": ["cat"]})
    args = ["--voc-root", str(root), "--model", "small", "--classes", "cat"]
    _fails(args, "a.xml (object 1): unknown class 'dog': add it to --classes", capsys)
    # a class in the test list only: never trained, so named before training starts
    root = _voc_by_hand(tmp_path / "w", {"a": ["cat"], "b": ["cat"], "c": ["cow"]})
    _fails(
        ["--voc-root", str(root), "--model", "small"],
        "c.xml (object 0): unknown class 'cow'",
        capsys,
    )
    _fails(["--voc-root", str(root), "--classes", "cat,cat"], "--classes must be distinct", capsys)


def test_coco_bad_inputs(coco_files, tmp_path, capsys):
    train_json, val_json, images = coco_files
    coco = ["--coco-json", str(train_json), "--model", "small"]
    _fails(coco, "--coco-json needs --images", capsys)
    coco += ["--images", str(images)]
    for fraction in ("0", "1", "1.5", "-0.2"):
        _fails(coco + ["--val-fraction", fraction], "--val-fraction must lie in (0, 1)", capsys)
    _fails(coco + ["--val-json", str(val_json), "--val-fraction", "0.2"], "not both", capsys)
    other = json.loads(val_json.read_text())
    other["categories"][0]["name"] = "square"
    (tmp_path / "other.json").write_text(json.dumps(other))
    _fails(coco + ["--val-json", str(tmp_path / "other.json")], "the same categories", capsys)
    missing = ["--coco-json", str(tmp_path / "none.json"), "--images", str(images)]
    _fails(missing, "none.json not found", capsys)
    _fails(coco + ["--classes", "a,b"], "--classes is for --voc-root only", capsys)


def test_options_that_belong_to_another_source(voc_root, coco_files, capsys):
    train_json, _, images = coco_files
    _fails(["--images", str(images)], "--images is for --coco-json only", capsys)
    both = ["--voc-root", str(voc_root), "--coco-json", str(train_json)]
    _fails(both, "give --voc-root or --coco-json, not both", capsys)
    _fails(["--voc-root", str(voc_root), "--train-size", "8"], "for the shapes data only", capsys)
    _fails(["--model", "ssd300"], "--model ssd300 needs data", capsys)
    _fails(["--voc-root", str(voc_root), "--demo"], "--demo trains on the synthetic shapes", capsys)
    small = ["--voc-root", str(voc_root), "--model", "small", "--vgg-weights", "w.pth"]
    _fails(small, "the small model has no VGG16", capsys)


def test_fit_default_boxes_and_diagnose_from_the_command_line(voc_root, tmp_path, capsys):
    argv = ["--voc-root", str(voc_root), "--model", "small", *FEW, "--out-dir", str(tmp_path)]
    assert train_cli.main([*argv, "--fit-default-boxes", "--diagnose"]) == 0
    printed = capsys.readouterr().out
    assert "coverage" in printed.lower() and "diagnosis:" in printed
    assert "class balance" in printed and "held-out mAP" in printed  # the data's and the model's
    spec = load_checkpoint(tmp_path / "checkpoint.pt")["model_spec"]
    # fitted or not, the same maps (so the same heads)
    assert tuple(spec["prior_cfg"]["feature_maps"]) == SSD128_SHAPES.feature_maps


def test_resume_on_other_default_boxes_is_refused(tmp_path):
    train_set, _ = shapes_datasets(8, 1, seed=0)
    cfg = TrainConfig.shapes_cpu(max_iters=2, batch_size=4, out_dir=str(tmp_path), log_every=1)
    smaller = tuple(0.8 * m for m in SSD128_SHAPES.min_sizes)  # what --fit-default-boxes may make
    other = dataclasses.replace(SSD128_SHAPES, min_sizes=smaller)
    first = train(cfg, ssd_small(5, cfg=other, width=16), train_set, SHAPE_CLASSES, progress=False)
    more = dataclasses.replace(cfg, max_iters=4)
    with pytest.raises(ValueError, match="other default boxes"):
        train(more, ssd_small(5, width=16), train_set, SHAPE_CLASSES, resume=first.checkpoint,
              progress=False)  # fmt: skip


def test_init_from_takes_the_weights_that_fit_and_augment_picks_the_steps(voc_root, tmp_path,
                                                                          capsys):  # fmt: skip
    shapes_run = tmp_path / "shapes"
    assert train_cli.main([*FEW, "--train-size", "8", "--val-size", "2", "--out-dir",
                           str(shapes_run)]) == 0  # fmt: skip
    capsys.readouterr()
    argv = ["--voc-root", str(voc_root), "--model", "small", *FEW, "--augment", "flip",
            "--init-from", str(shapes_run / "checkpoint.pt"), "--out-dir", str(tmp_path / "own")]
    assert train_cli.main(argv) == 0
    printed = capsys.readouterr().out
    # 4 shapes classes and 4 of one's own: here every tensor fits, heads included
    assert f"weights from {shapes_run / 'checkpoint.pt'}:" in printed
    model = ssd_small(5, width=SMALL_WIDTH)
    with pytest.raises(ValueError, match="none of its tensors fits"):
        init_weights(torch.nn.Linear(2, 2), shapes_run / "checkpoint.pt")
    assert "of" in init_weights(model, shapes_run / "checkpoint.pt")
    steps = datasets.AUGMENTATIONS["flip"]
    assert steps == {"expand": False, "crop": False, "distort": False}


def test_small_on_own_data_starts_from_the_shapes_model_made_once(voc_root, tmp_path, capsys,
                                                                  quick_shapes_start):  # fmt: skip
    argv = ["--voc-root", str(voc_root), "--model", "small", *FEW, "--out-dir", str(tmp_path / "a")]
    assert train_cli.main(argv) == 0
    assert f"weights from {quick_shapes_start}:" in capsys.readouterr().out
    made = quick_shapes_start.stat().st_mtime_ns
    argv[-1] = str(tmp_path / "b")
    assert train_cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert "making the starting weights" not in printed
    assert quick_shapes_start.stat().st_mtime_ns == made  # made once, then reused
    assert f"weights from {quick_shapes_start}:" in printed
    # flips only: no colour change, crop or zoom out on one's own data
    source = datasets.voc(train_cli._parser().parse_args(argv), {})
    assert "steps=flip)" in repr(source.train_set.transform)
    capsys.readouterr()
    assert train_cli.main([*argv[:-1], str(tmp_path / "c"), "--init-from", "none"]) == 0
    assert "weights from" not in capsys.readouterr().out


def test_a_bad_or_unfinished_shapes_start_is_refused_by_name(voc_root, tmp_path, capsys,
                                                            quick_shapes_start):  # fmt: skip
    argv = ["--voc-root", str(voc_root), "--model", "small", *FEW, "--out-dir", str(tmp_path)]
    assert train_cli.main(argv) == 0  # makes it, if no other test has
    good = quick_shapes_start.read_bytes()
    try:
        quick_shapes_start.write_bytes(good[: len(good) // 2])
        assert train_cli.main(argv) == 2
        err = capsys.readouterr().err
        assert str(quick_shapes_start) in err and "delete it" in err
        cfg = TrainConfig.shapes_cpu(max_iters=3, batch_size=2, out_dir=str(tmp_path / "short"))
        short = train(cfg, ssd_small(5, width=SMALL_WIDTH), shapes_datasets(2, 1)[0],
                      SHAPE_CLASSES, progress=False).checkpoint  # fmt: skip
        state = torch.load(short, weights_only=True)
        state["iteration"] = 2  # as if stopped before its end
        quick_shapes_start.unlink()
        save_checkpoint(quick_shapes_start, state)
        assert train_cli.main(argv) == 2
        assert "not a finished shapes run" in capsys.readouterr().err
    finally:
        quick_shapes_start.write_bytes(good)


def test_small_data_recipe_divides_the_rate_at_80_and_95_percent_of_any_length():
    assert TrainConfig.small_data_cpu().lr_steps == (800, 950)
    assert TrainConfig.small_data_cpu(max_iters=200).lr_steps == (160, 190)
    assert TrainConfig.small_data_cpu(max_iters=200, lr_steps=(50,)).lr_steps == (50,)
    assert TrainConfig.small_data_cpu().batch_size == 32


def test_augment_and_init_from_are_refused_where_they_make_no_sense(voc_root, tmp_path, capsys):
    assert train_cli.main([*FEW, "--augment", "flip"]) == 2
    assert "--augment is for --voc-root / --coco-json" in capsys.readouterr().err
    argv = ["--voc-root", str(voc_root), "--model", "small", *FEW, "--init-from", "a.pt",
            "--resume", "b.pt"]
    assert train_cli.main(argv) == 2
    assert "not both" in capsys.readouterr().err
    argv = ["--voc-root", str(voc_root), "--model", "ssd300", *FEW, "--init-from", "shapes"]
    assert train_cli.main(argv) == 2
    assert "--init-from shapes is the small model's start, not ssd300's" in capsys.readouterr().err


def test_demo_trains_the_short_schedule_unless_told(monkeypatch):
    seen = []

    def fake_train(cfg, *args, **kwargs):
        seen.append(cfg.max_iters)
        raise ValueError("stop here")  # reported as a settings error: exit 2, nothing trained

    monkeypatch.setattr(train_cli, "train", fake_train)
    assert train_cli.main(["--demo", "--train-size", "4", "--val-size", "2"]) == 2
    assert train_cli.main(["--demo", "--iters", "3", "--train-size", "4", "--val-size", "2"]) == 2
    assert seen == [train_cli.DEMO_ITERS, 3] and train_cli.DEMO_ITERS < 1200
