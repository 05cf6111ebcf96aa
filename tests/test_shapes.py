"""ShapesDataset: deterministic from (seed, index), valid boxes, every class, DataLoader workers."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from ssd_edu.data import (
    SHAPE_CLASSES,
    ShapesDataset,
    TrainTransform,
    collate_detections,
    denormalize,
    render_shapes,
)
from ssd_edu.data.shapes import _shape_mask

# sha256 of the image, boxes and labels bytes of ShapesDataset(8, seed=0)[i], recorded with the
# code before the overlap test moved to ssd_edu.boxes.box_iou: every scene must stay as it was
PINNED = (
    "650d6030746720f9f975bb64b05f23f1c3b029a6548ca1de0bffcebf10d69886",
    "17ac360276d8d1dc563685d4393f33f2760ae49e87b0fbf2924cb33edfe10668",
    "ed6a99258d6ede1879e50ba0dcf0046df5431567619de258511cc58ce6ca1fa3",
    "7a882b27bd545d5b1b623cd4580cbe305af4ae4d1ecd4a83978af81c76643b26",
    "6f97def68c686bcd8794348d48b05a440fe564730c9a75c29338f66e33200e92",
    "ab85543dbaac109b22e4637e8b44571ef98ffcbc095033cb9d581044f0a8471d",
    "d2c1b1c35463ebc29d01025a963e0515d6d853e015f17e8b6ceab04f92c1a2ed",
    "e623e412d158419901fa3c7434ae4c4f05fc75eb6250daa82504380113041fd3",
)


def test_items_are_the_pinned_scenes():
    ds = ShapesDataset(8, seed=0)
    for i, want in enumerate(PINNED):
        image, boxes, labels, _ = ds[i]
        data = image.numpy().tobytes() + boxes.numpy().tobytes() + labels.numpy().tobytes()
        assert hashlib.sha256(data).hexdigest() == want, f"item {i} changed"


def test_collate_detections_is_handed_on_from_the_loader():
    from ssd_edu.data import loader, shapes

    assert shapes.collate_detections is loader.collate_detections


def test_item_format():
    image, boxes, labels, difficult = ShapesDataset(4, image_size=64)[0]
    assert image.shape == (3, 64, 64) and image.dtype == torch.float32
    assert boxes.dtype == torch.float32 and boxes.shape == (len(labels), 4)
    assert labels.dtype == torch.int64 and difficult.dtype == torch.bool
    assert not difficult.any()


def test_masks_by_hand():
    # 6 x 6 box: the cross's bars are the middle two rows and columns
    cross = _shape_mask(3, 6, 6)
    assert cross[:, 2:4].all() and cross[2:4, :].all() and not cross[0, 0] and cross.sum() == 20
    # the triangle's apex row is narrow and its base row full
    tri = _shape_mask(2, 8, 8)
    assert tri[0].sum() <= 2 and tri[-1].all()
    assert _shape_mask(0, 3, 5).all()
    ellipse = _shape_mask(1, 9, 9)
    assert ellipse[4].all() and not ellipse[0, 0]


def test_boxes_are_tight_around_painted_pixels():
    # the shape's colour differs from the background just outside its box on some side
    rng = np.random.default_rng(0)
    image, boxes, kinds = render_shapes(rng, 96, 80, max_objects=1)
    (c1, r1, c2, r2), kind = boxes[0], kinds[0]
    mask = _shape_mask(int(kind), c2 - c1, r2 - r1)
    assert mask[0].any() and mask[-1].any() and mask[:, 0].any() and mask[:, -1].any()


def test_deterministic_and_seed_dependent():
    a, b = ShapesDataset(10, seed=3), ShapesDataset(10, seed=3)
    for i in (0, 7, 3):
        for x, y in zip(a[i], b[i]):
            assert torch.equal(x, y)
    c = ShapesDataset(10, seed=4)
    assert not torch.equal(a[0][0], c[0][0])
    # item i does not depend on which items were drawn before it
    fresh = ShapesDataset(10, seed=3)
    assert torch.equal(fresh[7][1], a[7][1])


def test_boxes_valid_sizes_span_scales_and_all_classes_appear():
    ds = ShapesDataset(300, image_size=128, seed=0)
    sizes, seen = [], set()
    for i in range(len(ds)):
        _, boxes, labels = ds.render(i)
        assert 1 <= len(labels) <= ds.max_objects
        assert torch.all((boxes >= 0) & (boxes <= 1))
        assert torch.all(boxes[:, 2:] > boxes[:, :2])
        assert labels.min() >= 1 and labels.max() <= len(SHAPE_CLASSES)
        wh = (boxes[:, 2:] - boxes[:, :2]) * 128
        sizes += wh.prod(dim=1).sqrt().tolist()
        seen |= set(labels.tolist())
    assert seen == set(range(1, len(SHAPE_CLASSES) + 1))
    assert min(sizes) < 14 and max(sizes) > 90  # tiny to image-filling


def test_overlap_is_limited():
    from ssd_edu.boxes import box_iou

    ds = ShapesDataset(100, seed=1)
    for i in range(len(ds)):
        _, boxes, _ = ds.render(i)
        iou = box_iou(boxes, boxes) - torch.eye(len(boxes))
        assert iou.max() <= 0.3 + 1e-6


def test_default_image_is_normalised_like_the_model_expects():
    ds = ShapesDataset(2, image_size=32)
    image = ds[0][0]
    raw = torch.from_numpy(ds.render(0)[0]).permute(2, 0, 1).float() / 255
    torch.testing.assert_close(denormalize(image), raw, atol=1e-5, rtol=0)


def test_augmented_items_valid_and_epoch_dependent():
    ds = ShapesDataset(8, image_size=64, augment=True, seed=2)
    assert isinstance(ds.transform, TrainTransform)
    first = [ds[i] for i in range(8)]
    again = [ds[i] for i in range(8)]
    for a, b in zip(first, again):
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    for image, boxes, labels, difficult in first:
        assert image.shape == (3, 64, 64)
        assert boxes.shape == (len(labels), 4) and difficult.shape == labels.shape
        assert torch.all(boxes[:, 2:] > boxes[:, :2])
    ds.set_epoch(1)
    assert any(not torch.equal(ds[i][0], first[i][0]) for i in range(8))


def test_dataloader_with_two_workers_is_deterministic():
    ds = ShapesDataset(12, image_size=48, augment=True, seed=5)
    single = list(DataLoader(ds, batch_size=4, collate_fn=collate_detections))
    multi = list(DataLoader(ds, batch_size=4, collate_fn=collate_detections, num_workers=2))
    assert len(single) == len(multi) == 3
    for (im_a, bx_a, lb_a, df_a), (im_b, bx_b, lb_b, df_b) in zip(single, multi):
        assert im_a.shape == (4, 3, 48, 48)
        assert torch.equal(im_a, im_b)
        assert all(torch.equal(x, y) for x, y in zip(bx_a, bx_b))
        assert all(torch.equal(x, y) for x, y in zip(lb_a, lb_b))
        assert all(torch.equal(x, y) for x, y in zip(df_a, df_b))


def test_collate_rejects_bad_batches():
    with pytest.raises(ValueError, match="batch must hold at least one item, got 0"):
        collate_detections([])
    a, b = ShapesDataset(1, image_size=32)[0], ShapesDataset(1, image_size=48)[0]
    with pytest.raises(ValueError, match="images in a batch must share one shape"):
        collate_detections([a, b])


def test_bad_arguments():
    with pytest.raises(ValueError, match="image_size must be at least 16 pixels, got 8"):
        ShapesDataset(4, image_size=8)
    with pytest.raises(ValueError, match="need 4 <= min_size <= max_size <= image_size"):
        ShapesDataset(4, image_size=64, min_size=100)
    with pytest.raises(IndexError, match="index 4 out of range for 4 items"):
        ShapesDataset(4)[4]
