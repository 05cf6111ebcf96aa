"""The paper's augmentation (reference layer): hand-worked steps, boxes that follow the pixels,
the draw's random stream pinned, invariants, determinism."""

from __future__ import annotations

import dataclasses
import hashlib

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
from ssd_edu.data.geometry import (
    MAX_TRIALS,
    canvas_pixels,
    crop,
    flip,
    patch_pixels,
    trial_patches,
    window_boxes,
    zoom_out,
)
from ssd_edu.data.photometric import draw_photometric
from ssd_edu.data.transforms import _N_DRAWS, Augmentation, mean_colour


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
    p = trial_patches(u).numpy()
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
        u = torch.rand(50, 4, generator=g, dtype=torch.float64)
        patch, best = sample_patch(boxes, min_iou, u)
        if patch is not None:
            met += 1
            assert best >= min_iou
            iou = _reference_iou(patch, boxes.double().numpy())
            assert max(iou) == pytest.approx(best)
    assert met > 0


def test_sample_patch_without_objects():
    u = torch.rand(50, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert sample_patch(torch.zeros(0, 4), None, u) == (None, 0.0)


def _reference_iou(patch, boxes) -> list[float]:
    out = []
    for b in boxes:
        iw = max(0.0, min(patch[2], b[2]) - max(patch[0], b[0]))
        ih = max(0.0, min(patch[3], b[3]) - max(patch[1], b[1]))
        inter = iw * ih
        union = (patch[2] - patch[0]) * (patch[3] - patch[1]) + (b[2] - b[0]) * (b[3] - b[1])
        out.append(inter / (union - inter))
    return out


# ---------------------------------------------------------------------------------------------
# the plain steps by hand: whole pixels, and boxes that follow them exactly
# ---------------------------------------------------------------------------------------------

WHITE = (255, 255, 255)


def painted(width: int, height: int, rect: tuple[int, int, int, int]) -> Image.Image:
    """A black image with a white rectangle on the pixels ``rect`` = (x1, y1, x2, y2)."""
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[rect[1] : rect[3], rect[0] : rect[2]] = WHITE
    return Image.fromarray(pixels)


def extent(image: Image.Image) -> tuple[int, int, int, int]:
    """The pixel edges (x1, y1, x2, y2) of the white pixels."""
    white = np.all(np.asarray(image) == WHITE, axis=-1)
    cols, rows = np.flatnonzero(white.any(axis=0)), np.flatnonzero(white.any(axis=1))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def test_zoom_out_by_hand():
    # a 10 x 8 image, ratio 2.5: a 25 x 20 canvas; the image's corner at 0.4 and 1.0 of the free
    # room (15 x 12 pixels), so at (6, 12); the white pixels 2..6 x 1..5 move to 8..12 x 13..17
    assert canvas_pixels(10, 8, (2.5, 0.4, 1.0)) == (25, 20, 6, 12)
    box = torch.tensor([[0.2, 0.125, 0.6, 0.625]], dtype=torch.float64)
    canvas, moved = zoom_out(painted(10, 8, (2, 1, 6, 5)), box, (2.5, 0.4, 1.0), (1, 2, 3))
    assert canvas.size == (25, 20) and canvas.getpixel((24, 0)) == (1, 2, 3)
    assert extent(canvas) == (8, 13, 12, 17)
    want = torch.tensor([[8.0, 13.0, 12.0, 17.0]], dtype=torch.float64)
    torch.testing.assert_close(moved * torch.tensor([25.0, 20.0, 25.0, 20.0]).double(), want)


def test_crop_by_hand():
    # patch (0.25, 0, 0.75, 0.5) of a 20 x 10 image: pixels 5..15 x 0..5
    assert patch_pixels(20, 10, (0.25, 0.0, 0.75, 0.5)) == (5, 0, 15, 5)
    boxes = torch.tensor(
        [[0.35, 0.1, 0.55, 0.3], [0.0, 0.6, 0.2, 0.9], [0.6, 0.2, 0.85, 0.4]], dtype=torch.float64
    )
    cut, kept, keep = crop(painted(20, 10, (7, 1, 11, 3)), boxes, (0.25, 0.0, 0.75, 0.5))
    assert cut.size == (10, 5) and extent(cut) == (2, 1, 6, 3)
    # box 1's centre (0.1, 0.75) lies outside; box 2's (0.725, 0.3) inside, its right end clipped
    assert keep.tolist() == [True, False, True]
    want = torch.tensor([[0.2, 0.2, 0.6, 0.6], [0.7, 0.4, 1.0, 0.8]], dtype=torch.float64)
    torch.testing.assert_close(kept, want)
    # the crop's box arithmetic is window_boxes (the exercise checker's reference)
    same, same_keep = window_boxes(boxes, np.array([0.25, 0.0, 0.75, 0.5]))
    assert torch.equal(same, kept) and torch.equal(same_keep, keep)


def test_bad_steps_are_named():
    image = painted(10, 8, (2, 1, 6, 5))
    with pytest.raises(ValueError, match=r"zoom-out ratio must be >= 1, got expand=\(0.5, 0, 0\)"):
        zoom_out(image, BOXES, (0.5, 0, 0), (0, 0, 0))
    with pytest.raises(ValueError, match=r"patch must be xyxy fractions inside \[0, 1\]"):
        crop(image, BOXES, (0.5, 0.0, 0.2, 1.0))
    with pytest.raises(
        ValueError, match=r"u must have shape \[T, 4\], one row per trial, got \[50, 3\]"
    ):
        sample_patch(BOXES, 0.5, torch.rand(50, 3, dtype=torch.float64))


def test_patch_pixels_are_never_empty():
    assert patch_pixels(3, 3, (0.99, 0.99, 1.0, 1.0)) == (2, 2, 3, 3)
    assert patch_pixels(5, 5, (0.5, 0.5, 0.55, 0.55)) == (2, 2, 3, 3)  # round(2.5) = 2


def test_flip_by_hand():
    mirrored, out = flip(painted(10, 4, (1, 0, 3, 2)), torch.tensor([[0.1, 0.0, 0.3, 0.5]]))
    assert extent(mirrored) == (7, 0, 9, 2)
    torch.testing.assert_close(out, torch.tensor([[0.7, 0.0, 0.9, 0.5]]))


def test_pixel_window_by_hand():
    # 100 x 50 image, ratio 2 centred: canvas 200 x 100 with the image at (50, 25)
    aug = Augmentation(None, (2.0, 0.5, 0.5), None, "whole", False)
    np.testing.assert_allclose(aug.window((100, 50)), [-0.5, -0.5, 1.5, 1.5])
    # the middle half of the canvas is the image itself
    aug = Augmentation(None, (2.0, 0.5, 0.5), (0.25, 0.25, 0.75, 0.75), 0.1, False)
    np.testing.assert_allclose(aug.window((100, 50)), [0.0, 0.0, 1.0, 1.0])
    # whole pixels: ratio 1.5 of 7 pixels is a canvas of round(10.5) = 10
    aug = Augmentation(None, (1.5, 1.0, 0.0), None, "whole", False)
    np.testing.assert_allclose(aug.window((7, 7)), [-3 / 7, 0, 1, 10 / 7])


@pytest.mark.parametrize("seed", range(16))
def test_boxes_follow_the_pixels_through_every_step(seed):
    # a painted rectangle through zoom out, crop and flip lands exactly where its box says
    g = torch.Generator().manual_seed(seed)
    width, height = (int(v) for v in torch.randint(20, 90, (2,), generator=g))
    x1, y1 = (int(v) for v in torch.randint(0, 10, (2,), generator=g))
    rect = (x1, y1, x1 + int(torch.randint(4, width - 10, (1,), generator=g)), height - y1)
    box = torch.tensor([rect], dtype=torch.float64) / torch.tensor([width, height] * 2)
    aug = TrainTransform(distort=False).draw(box, g)
    image, boxes = painted(width, height, rect), box
    if aug.expand is not None:
        image, boxes = zoom_out(image, boxes, aug.expand, (0, 0, 0))
    if aug.crop is not None:
        image, boxes, _ = crop(image, boxes, aug.crop)
    if aug.flip:
        image, boxes = flip(image, boxes)
    if len(boxes) == 1:  # not when the object's centre fell outside the patch
        size = torch.tensor(image.size * 2, dtype=torch.float64)
        want = torch.tensor([extent(image)], dtype=torch.float64)
        torch.testing.assert_close(boxes * size, want, atol=1e-9, rtol=0)


def test_colours_are_distorted_before_the_zoom_out():
    # the reference distorts the photo, then puts it on the canvas: the canvas keeps the mean
    aug = Augmentation(Photometric(False, 30.0, 1.4, 1.5, 10.0), (4.0, 0.0, 0.0), None, "", False)
    x, *_ = TrainTransform(size=64).apply(smooth_image(), BOXES, LABELS, DIFFICULT, aug)
    pixels = (denormalize(x) * 255).round()  # [3, 64, 64]
    # the photo fills the top-left 16 x 16 output pixels; beyond 20 the resize sees only canvas
    mean = torch.tensor(mean_colour(IMAGENET_MEAN), dtype=pixels.dtype).view(3, 1, 1)
    assert torch.equal(pixels[:, 20:, 20:], mean.expand(3, 44, 44))


# ---------------------------------------------------------------------------------------------
# the draw: the random stream is pinned, and the plain loop is the vectorised rule
# ---------------------------------------------------------------------------------------------

BOX_SETS = {
    "none": torch.zeros(0, 4),
    "one": torch.tensor([[0.3, 0.2, 0.6, 0.7]]),
    "border": torch.tensor([[0.0, 0.0, 0.25, 0.3], [0.7, 0.6, 1.0, 1.0], [0.0, 0.4, 1.0, 0.6]]),
    "many": torch.tensor(
        [
            [0.04, 0.06, 1.0, 1.0],
            [0.29, 0.25, 0.65, 0.55],
            [0.27, 0.06, 0.68, 0.29],
            [0.1, 0.1, 0.12, 0.13],
            [0.5, 0.5, 0.9, 0.95],
        ]
    ),
}
# sha256 of repr(TrainTransform(300).draw(boxes, Generator().manual_seed(s))) for s in 0..199,
# recorded before the draw was rewritten as plain steps: the same seed gives the same augmentation
DRAW_DIGESTS = {
    "none": "26290c5e06ddba8be344bed101397347306658e894e273cb10d74c70b81ca9b9",
    "one": "3c86e0978a8a3705c4611006c47ecf600272a2fb029e81b938e4515da824cd14",
    "border": "46316a7e05460174a26524534636b22eb14e5341b2af1d85e64d6d004a77647e",
    "many": "fbae570f54e8aeaa136ec4789fe046c6573ef3aaf2290a137d5199d91c5f45c8",
}


def test_the_draw_is_the_pinned_random_stream():
    t = TrainTransform(300)
    for name, boxes in BOX_SETS.items():
        digest = hashlib.sha256()
        for seed in range(200):
            digest.update(repr(t.draw(boxes, torch.Generator().manual_seed(seed))).encode())
        assert digest.hexdigest() == DRAW_DIGESTS[name], name


def vectorised_draw(boxes: torch.Tensor, generator: torch.Generator) -> Augmentation:
    """The draw as the package had it before: every trial and overlap at once, in numpy."""
    u = torch.rand(_N_DRAWS, generator=generator, dtype=torch.float64).numpy()
    e = u[9:13]
    expand = (float(1 + 3 * e[1]), float(e[2]), float(e[3])) if e[0] < 0.5 else None
    gt = boxes.double().numpy().reshape(-1, 4)
    if expand is not None:
        r, ex, ey = expand
        gt = (gt + np.array([(r - 1) * ex, (r - 1) * ey] * 2)) / r
    c = u[13 : 13 + len(MIN_IOUS) * MAX_TRIALS * 4].reshape(len(MIN_IOUS), MAX_TRIALS, 4)
    s = 0.3 + 0.7 * c[..., 0]
    a = np.clip(0.5 + 1.5 * c[..., 1], s**2, 1 / s**2)
    w, h = np.minimum(s * np.sqrt(a), 1.0), np.minimum(s / np.sqrt(a), 1.0)
    x1, y1 = (1 - w) * c[..., 2], (1 - h) * c[..., 3]
    patches = np.stack((x1, y1, x1 + w, y1 + h), axis=-1)  # [6, 50, 4]
    lt = np.maximum(patches[..., None, :2], gt[:, :2])  # [6, 50, G, 2]
    rb = np.minimum(patches[..., None, 2:], gt[:, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=-1)  # [6, 50, G]
    area = np.prod(patches[..., 2:] - patches[..., :2], axis=-1)[..., None]
    best = (inter / (area + np.prod(gt[:, 2:] - gt[:, :2], axis=-1) - inter)).max(-1, initial=0)
    need = np.array([-1.0 if m is None else m for m in MIN_IOUS])[:, None]  # [6, 1]
    ok = (best >= need) & (len(gt) > 0)  # [6, 50]
    candidates = [(None, "whole")] + [
        (tuple(float(v) for v in patches[k, ok[k].argmax()]), MIN_IOUS[k])
        for k in np.flatnonzero(ok.any(axis=1))
    ]
    pick = min(int(u[-2] * len(candidates)), len(candidates) - 1)
    return Augmentation(draw_photometric(u[:9]), expand, *candidates[pick], bool(u[-1] < 0.5))


@pytest.mark.parametrize("name", list(BOX_SETS))
def test_the_draw_equals_the_vectorised_draw(name):
    t = TrainTransform(300)
    for seed in range(200):
        want = vectorised_draw(BOX_SETS[name], torch.Generator().manual_seed(seed))
        assert t.draw(BOX_SETS[name], torch.Generator().manual_seed(seed)) == want, seed


def test_the_draw_is_the_loop_of_sample_patch():
    # the draw computes all overlaps in one call; sample_patch per sampler decides the same
    t = TrainTransform(300)
    for seed in range(100):
        aug = t.draw(BOXES, torch.Generator().manual_seed(seed))
        u = torch.rand(_N_DRAWS, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        gt = BOXES.double()
        if aug.expand is not None:
            r, ex, ey = aug.expand
            gt = (gt + torch.tensor([(r - 1) * ex, (r - 1) * ey] * 2).double()) / r
        trials = u[13 : 13 + len(MIN_IOUS) * MAX_TRIALS * 4].reshape(len(MIN_IOUS), MAX_TRIALS, 4)
        candidates = [(None, "whole")]
        for k, min_iou in enumerate(MIN_IOUS):
            patch, _ = sample_patch(gt, min_iou, trials[k])
            if patch is not None:
                candidates.append((tuple(patch.tolist()), min_iou))
        pick = min(int(float(u[-2]) * len(candidates)), len(candidates) - 1)
        assert (aug.crop, aug.sampler) == candidates[pick], seed


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


def test_the_reference_has_no_fast_options():
    # the deferred photometric step is the fast layer's (ssd_edu.fast.augment)
    with pytest.raises(TypeError, match="defer_photometric"):
        TrainTransform(300, defer_photometric=True)


def test_names_notebooks_import_from_transforms_are_handed_on():
    from ssd_edu import imagenet
    from ssd_edu.data import geometry, photometric, transforms

    assert transforms.denormalize is imagenet.denormalize
    assert transforms.normalize is imagenet.normalize
    assert transforms.IMAGENET_MEAN is imagenet.IMAGENET_MEAN
    assert transforms.sample_patch is geometry.sample_patch
    assert transforms.photometric_distort is photometric.photometric_distort


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
