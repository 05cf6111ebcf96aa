"""The paper's augmentation: hand-worked geometry, a plain reference, invariants, determinism."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from ssd_edu.data import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    MIN_IOUS,
    EvalTransform,
    Photometric,
    TrainTransform,
    denormalize,
    item_generator,
    normalize,
    photometric_distort,
    sample_patch,
)
from ssd_edu.data.transforms import Augmentation, _patches, render_window, window_boxes


def smooth_image(width: int = 120, height: int = 80) -> Image.Image:
    """A smooth test picture (gradients), so resampling differences stay small."""
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack((x * 255 / width, y * 255 / height, 128 + 0 * x), axis=-1)
    return Image.fromarray(rgb.astype(np.uint8))


BOXES = torch.tensor([[0.1, 0.2, 0.5, 0.6], [0.4, 0.1, 0.9, 0.9], [0.0, 0.7, 0.2, 1.0]])
LABELS = torch.tensor([3, 7, 15])
DIFFICULT = torch.tensor([False, True, False])


# ---------------------------------------------------------------------------------------------
# hand-worked cases
# ---------------------------------------------------------------------------------------------


def test_window_boxes_by_hand():
    # window = the right half of the image: x in [0.5, 1]
    boxes = torch.tensor([[0.6, 0.0, 0.8, 0.5], [0.4, 0.2, 0.7, 0.4], [0.0, 0.0, 0.2, 0.2]])
    out, keep = window_boxes(boxes, np.array([0.5, 0.0, 1.0, 1.0]))
    # box 0 -> x (0.6 - 0.5) / 0.5 = 0.2 .. 0.6; box 1 centre x 0.55 is inside, clipped at 0;
    # box 2's centre (0.1) lies outside the window: dropped
    assert keep.tolist() == [True, True, False]
    torch.testing.assert_close(out, torch.tensor([[0.2, 0.0, 0.6, 0.5], [0.0, 0.2, 0.4, 0.4]]))


def test_zoom_out_window_by_hand():
    # ratio 4, image in the canvas' top-left corner: the image fills [0, 0.25] of the output
    aug = Augmentation(None, (4.0, 0.0, 0.0), None, None, False)
    np.testing.assert_allclose(aug.window(), [0, 0, 4, 4])
    # ratio 2 with the image at the far right / bottom: canvas starts at -1 image widths
    aug = Augmentation(None, (2.0, 1.0, 1.0), (0.5, 0.5, 1.0, 1.0), None, False)
    np.testing.assert_allclose(aug.window(), [0, 0, 1, 1])


def test_brightness_and_contrast_saturate_like_8_bit_code():
    img = Image.fromarray(np.array([[[0, 100, 250]]], dtype=np.uint8))
    brighter = photometric_distort(img, Photometric(False, 10.0, None, None, None))
    assert np.asarray(brighter).tolist() == [[[10, 110, 255]]]
    doubled = photometric_distort(img, Photometric(False, None, 2.0, None, None))
    assert np.asarray(doubled).tolist() == [[[0, 200, 255]]]


def test_the_two_orders_differ():
    # brightness then contrast on 100: (100 - 32) * 1.5 = 102 either way for the RGB steps, but
    # saturation before / after contrast changes a saturated pixel differently
    img = Image.fromarray(np.array([[[200, 100, 50]]], dtype=np.uint8))
    first = photometric_distort(img, Photometric(False, None, 1.5, 0.5, None))
    last = photometric_distort(img, Photometric(True, None, 1.5, 0.5, None))
    assert np.asarray(first).tolist() != np.asarray(last).tolist()


def test_hue_shift_turns_red_towards_green():
    red = Image.fromarray(np.array([[[255, 0, 0]]], dtype=np.uint8))
    shifted = np.asarray(photometric_distort(red, Photometric(False, None, None, None, 120.0)))
    r, g, b = shifted[0, 0].tolist()
    assert g == 255 and r < 10 and b < 10


def test_normalize_and_denormalize():
    img = Image.new("RGB", (4, 3), tuple(round(255 * m) for m in IMAGENET_MEAN))
    x = normalize(img)
    assert x.shape == (3, 3, 4) and x.dtype == torch.float32
    assert x.abs().max() < 0.01  # the mean colour is (almost) zero
    torch.testing.assert_close(
        denormalize(x)[:, 0, 0], torch.tensor(IMAGENET_MEAN), atol=3e-3, rtol=0
    )


def test_patches_follow_the_released_sampler():
    u = torch.rand(5000, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    p = _patches(u.numpy())
    w, h = p[:, 2] - p[:, 0], p[:, 3] - p[:, 1]
    assert p.min() >= 0 and p.max() <= 1 + 1e-12
    np.testing.assert_array_less(0.3**2 - 1e-9, w * h)  # area = s^2, s in [0.3, 1]
    np.testing.assert_array_less(w / h, 2 + 1e-9)
    np.testing.assert_array_less(0.5 - 1e-9, w / h)


@pytest.mark.parametrize("min_iou", [0.1, 0.3, 0.5, 0.7, 0.9])
def test_sample_patch_meets_min_iou(min_iou):
    g = torch.Generator().manual_seed(1)
    boxes = torch.cat((BOXES, torch.tensor([[0.05, 0.1, 0.95, 0.9]])))
    met = 0
    for _ in range(50):
        u = torch.rand(50, 4, generator=g, dtype=torch.float64).numpy()
        patch, best = sample_patch(boxes, min_iou, u)
        if patch is not None:
            met += 1
            assert best >= min_iou
            iou = _reference_iou(patch, boxes.double().numpy())
            assert max(iou) == pytest.approx(best)
    assert met > 0


def test_sample_patch_without_objects():
    u = np.random.default_rng(0).random((50, 4))
    assert sample_patch(torch.zeros(0, 4), None, u) == (None, 0.0)


# ---------------------------------------------------------------------------------------------
# a plain reference: build the zoom-out canvas for real, crop it, follow each box with loops
# ---------------------------------------------------------------------------------------------


def _reference_iou(patch, boxes) -> list[float]:
    out = []
    for b in boxes:
        iw = max(0.0, min(patch[2], b[2]) - max(patch[0], b[0]))
        ih = max(0.0, min(patch[3], b[3]) - max(patch[1], b[1]))
        inter = iw * ih
        union = (patch[2] - patch[0]) * (patch[3] - patch[1]) + (b[2] - b[0]) * (b[3] - b[1])
        out.append(inter / (union - inter))
    return out


def _reference(image: Image.Image, boxes: torch.Tensor, aug: Augmentation, size: int):
    """Zoom out on a real canvas, crop, resize, flip: slow and obvious."""
    w, h = image.size
    r, ex, ey = aug.expand if aug.expand is not None else (1.0, 0.0, 0.0)
    cw, ch = w * r, h * r  # canvas size in (fractional) pixels
    ox, oy = (r - 1) * ex * w, (r - 1) * ey * h
    canvas = Image.new("RGB", (round(cw), round(ch)), tuple(round(255 * m) for m in IMAGENET_MEAN))
    canvas.paste(image, (round(ox), round(oy)))
    crop = aug.crop if aug.crop is not None else (0.0, 0.0, 1.0, 1.0)
    px = (crop[0] * cw, crop[1] * ch, crop[2] * cw, crop[3] * ch)
    inside = (px[0], px[1], min(px[2], canvas.size[0]), min(px[3], canvas.size[1]))
    out = canvas.resize((size, size), Image.Resampling.BILINEAR, box=inside)
    kept = []
    for b in boxes.tolist():
        bx = [b[0] * w + ox, b[1] * h + oy, b[2] * w + ox, b[3] * h + oy]  # canvas pixels
        cx, cy = (bx[0] + bx[2]) / 2, (bx[1] + bx[3]) / 2
        if aug.crop is not None and not (px[0] <= cx <= px[2] and px[1] <= cy <= px[3]):
            continue
        nb = [
            min(max((bx[0] - px[0]) / (px[2] - px[0]), 0), 1),
            min(max((bx[1] - px[1]) / (px[3] - px[1]), 0), 1),
            min(max((bx[2] - px[0]) / (px[2] - px[0]), 0), 1),
            min(max((bx[3] - px[1]) / (px[3] - px[1]), 0), 1),
        ]
        if aug.flip:
            nb = [1 - nb[2], nb[1], 1 - nb[0], nb[3]]
        kept.append(nb)
    if aug.flip:
        out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return out, torch.tensor(kept).reshape(-1, 4)


@pytest.mark.parametrize("seed", range(12))
def test_matches_the_plain_reference(seed):
    image = smooth_image()
    t = TrainTransform(size=64, distort=False)
    aug = t.draw(BOXES, torch.Generator().manual_seed(seed))
    got, boxes, labels, difficult = t.apply(image, BOXES, LABELS, DIFFICULT, aug)
    ref_image, ref_boxes = _reference(image, BOXES, aug, 64)
    torch.testing.assert_close(boxes, ref_boxes.float(), atol=1e-5, rtol=0)
    # one resize of the visible part vs. a resize of the whole canvas: a few levels apart at most
    diff = (
        denormalize(got) * 255
        - normalize(ref_image).new_tensor(np.asarray(ref_image)).permute(2, 0, 1)
    ).abs()
    assert diff.mean() < 3.0, f"mean pixel difference {diff.mean():.2f}"
    assert len(labels) == len(boxes) == len(difficult)


# ---------------------------------------------------------------------------------------------
# invariants and determinism
# ---------------------------------------------------------------------------------------------


@st.composite
def targets(draw):
    n = draw(st.integers(0, 6))
    xy = torch.tensor(draw(st.lists(st.tuples(*[st.floats(0, 0.8)] * 2), min_size=n, max_size=n)))
    wh = torch.tensor(
        draw(st.lists(st.tuples(*[st.floats(0.01, 0.2)] * 2), min_size=n, max_size=n))
    )
    boxes = torch.cat((xy, xy + wh), dim=1).reshape(-1, 4).float()
    labels = torch.arange(1, n + 1)
    difficult = labels % 2 == 0
    return boxes, labels, difficult


@settings(max_examples=40, deadline=None)
@given(targets(), st.integers(0, 2**31 - 1))
def test_outputs_are_always_valid(t, seed):
    boxes, labels, difficult = t
    image, out, out_labels, out_difficult = TrainTransform(size=48)(
        smooth_image(60, 40),
        boxes,
        labels,
        difficult,
        generator=torch.Generator().manual_seed(seed),
    )
    assert image.shape == (3, 48, 48) and image.dtype == torch.float32
    assert torch.isfinite(image).all()
    assert out.dtype == torch.float32 and out_labels.dtype == torch.int64
    assert out_difficult.dtype == torch.bool
    assert out.shape == (len(out_labels), 4) and out_difficult.shape == out_labels.shape
    assert torch.all((out >= 0) & (out <= 1))
    assert torch.all(out[:, 2:] > out[:, :2])
    # labels stay aligned: each surviving label is one of the inputs, with its own difficult flag
    for lab, dif in zip(out_labels.tolist(), out_difficult.tolist()):
        assert dif == (lab % 2 == 0)


def test_same_seed_same_result_different_seed_different():
    t = TrainTransform(size=64)
    a = t(smooth_image(), BOXES, LABELS, DIFFICULT, generator=item_generator(0, 0, 3))
    b = t(smooth_image(), BOXES, LABELS, DIFFICULT, generator=item_generator(0, 0, 3))
    c = t(smooth_image(), BOXES, LABELS, DIFFICULT, generator=item_generator(0, 1, 3))
    for x, y in zip(a, b):
        assert torch.equal(x, y)
    assert not torch.equal(a[0], c[0])


def test_global_generator_when_none_given():
    t = TrainTransform(size=32)
    torch.manual_seed(7)
    a = t(smooth_image(), BOXES, LABELS, DIFFICULT)
    torch.manual_seed(7)
    b = t(smooth_image(), BOXES, LABELS, DIFFICULT)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_every_sampler_and_step_gets_used():
    t = TrainTransform(size=32)
    augs = [t.draw(BOXES, item_generator(0, 0, i)) for i in range(400)]
    assert {a.sampler for a in augs} == {"whole", *MIN_IOUS}
    assert 0.4 < np.mean([a.flip for a in augs]) < 0.6
    assert 0.4 < np.mean([a.expand is not None for a in augs]) < 0.6
    assert 0.4 < np.mean([a.photometric.contrast_last for a in augs]) < 0.6
    assert 0.4 < np.mean([a.photometric.hue_degrees is not None for a in augs]) < 0.6
    ratios = [a.expand[0] for a in augs if a.expand is not None]
    assert 1 <= min(ratios) and max(ratios) <= 4


def test_steps_can_be_switched_off():
    t = TrainTransform(size=32, distort=False, expand=False, crop=False, flip=False)
    aug = t.draw(BOXES, item_generator(0, 0, 0))
    assert aug == Augmentation(None, None, None, None, False)
    image, boxes, *_ = t(smooth_image(), BOXES, LABELS, DIFFICULT)
    torch.testing.assert_close(boxes, BOXES)
    off = dataclasses.replace(
        TrainTransform(size=32).draw(BOXES, item_generator(0, 0, 0)), flip=False
    )
    assert off.flip is False


def test_eval_transform_keeps_boxes():
    image, boxes, labels, difficult = EvalTransform(size=40)(
        smooth_image(), BOXES, LABELS, DIFFICULT
    )
    assert image.shape == (3, 40, 40)
    torch.testing.assert_close(boxes, BOXES)
    assert torch.equal(labels, LABELS) and torch.equal(difficult, DIFFICULT)


def test_tensor_images_are_accepted():
    u8 = torch.from_numpy(np.array(smooth_image())).permute(2, 0, 1)
    a = EvalTransform(size=40)(u8, BOXES, LABELS, DIFFICULT)[0]
    b = EvalTransform(size=40)(u8.float() / 255, BOXES, LABELS, DIFFICULT)[0]
    torch.testing.assert_close(a, b)


def test_render_window_entirely_on_canvas():
    # a window beside the image shows only the mean colour
    out = render_window(smooth_image(), np.array([1.5, 0, 2.5, 1]), 16, (1, 2, 3))
    assert np.asarray(out).reshape(-1, 3).tolist() == [[1, 2, 3]] * 256


def test_bad_inputs_are_rejected():
    t = TrainTransform(size=32)
    with pytest.raises(ValueError, match=r"boxes must have shape \[N, 4\], got \[3, 5\]"):
        t(smooth_image(), torch.zeros(3, 5), LABELS, DIFFICULT)
    with pytest.raises(
        ValueError, match=r"labels must have shape \[N\] = \[3\] like boxes, got \[2\]"
    ):
        t(smooth_image(), BOXES, LABELS[:2], DIFFICULT)
    with pytest.raises(ValueError, match=r"difficult must have shape \[N\] = \[3\]"):
        EvalTransform()(smooth_image(), BOXES, LABELS, DIFFICULT[:1])
    with pytest.raises(
        ValueError, match=r"image must be a PIL image or a \[3, H, W\] tensor, got \[5, 5\]"
    ):
        t(torch.zeros(5, 5), BOXES, LABELS, DIFFICULT)
    with pytest.raises(ValueError, match="size must be a positive number of pixels, got 0"):
        TrainTransform(size=0)


def test_constants():
    assert IMAGENET_MEAN == (0.485, 0.456, 0.406) and IMAGENET_STD == (0.229, 0.224, 0.225)
    assert MIN_IOUS == (0.1, 0.3, 0.5, 0.7, 0.9, None)


# ---------------------------------------------------------------------------------------------
# the notebook's drawing functions (the explorer calls show_augmentation)
# ---------------------------------------------------------------------------------------------


def test_drawing_functions_run():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ssd_edu.data import ShapesDataset
    from ssd_edu.viz import (
        plot_augmentation_steps,
        plot_augmented_grid,
        plot_min_iou_behaviour,
        plot_shapes_samples,
        show_augmentation,
    )

    names = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o"]
    t = TrainTransform(size=48)
    image = smooth_image()
    aug = t.draw(BOXES, item_generator(0, 0, 26))
    figs = [
        plot_augmentation_steps(image, BOXES, LABELS, aug, t, class_names=names),
        plot_augmented_grid(image, BOXES, LABELS, t, seeds=range(3), ncols=2, class_names=names),
        plot_min_iou_behaviour({0.5: [0.6, 0.7], None: [0.2]}, {0.5: 0.5, None: 1.0}),
        plot_shapes_samples(ShapesDataset(3, image_size=32), range(3), ncols=2),
    ]
    for seed in range(4):
        figs.append(show_augmentation(image, BOXES, LABELS, seed=seed, size=48, class_names=names))
    figs.append(show_augmentation(image, BOXES, LABELS, 1, False, False, False, False, size=48))
    assert len(figs[0].axes) == 5
    for fig in figs:
        plt.close(fig)
