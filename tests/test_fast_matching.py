"""The padded batch matching of ssd_edu.fast equals the reference's loop over images, exactly."""

import pytest
import torch

from ssd_edu import matching as reference
from ssd_edu.fast import matching as fast
from ssd_edu.priors import SSD128_SHAPES, SSD300_VOC, default_boxes

PRIORS = default_boxes(SSD128_SHAPES)  # [1524, 4]
LIMIT = fast.CPU_PADDED_LIMIT


def xyxy(*rows):
    return torch.tensor(rows, dtype=torch.float32).reshape(-1, 4)


def random_gt(generator, n, min_size=0.02):
    xy = torch.rand(n, 2, generator=generator) * 0.9
    wh = min_size + torch.rand(n, 2, generator=generator) * 0.6
    return torch.cat((xy, (xy + wh).clamp(max=1.0)), dim=1)


def assert_same(boxes, labels, priors, threshold=0.5):
    loc_r, cls_r = reference.assign_targets_batch(boxes, labels, priors, threshold)
    loc_f, cls_f = fast.assign_targets_batch(boxes, labels, priors, threshold)
    assert torch.equal(cls_f, cls_r)
    assert torch.equal(loc_f, loc_r)  # the same arithmetic on the same boxes: bit for bit
    assert loc_f.dtype == loc_r.dtype and loc_f.device == loc_r.device
    loc_c, cls_c = fast.assign_targets_cpu(boxes, labels, priors, threshold)  # either form
    assert torch.equal(cls_c, cls_r) and torch.equal(loc_c, loc_r)


@pytest.fixture(params=["padded", "image by image"], autouse=True)
def cpu_form(request, monkeypatch):
    """Every test here runs assign_targets_cpu in both of its forms."""
    if request.param == "image by image":
        monkeypatch.setattr(fast, "CPU_PADDED_LIMIT", 0)
    return request.param


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7, 1.0])
def test_random_batches_with_empty_images(threshold):
    g = torch.Generator().manual_seed(0)
    counts = [3, 0, 1, 7, 2, 12, 0, 5]
    boxes = [random_gt(g, n) for n in counts]
    labels = [torch.randint(1, 21, (n,), generator=g) for n in counts]
    assert_same(boxes, labels, PRIORS, threshold)


def test_ties_duplicates_and_near_duplicates():
    g = torch.Generator().manual_seed(1)
    base = random_gt(g, 4)
    # identical objects claim the same best box; near-copies nearly so
    boxes = [torch.cat((base, base[:1], base[:1] + 0.001, base[1:2])), base[:1].repeat(3, 1)]
    labels = [torch.arange(1, 8), torch.tensor([1, 2, 3])]
    assert_same(boxes, labels, PRIORS)
    # an object exactly between two equal default boxes (fractions exact in binary)
    priors = torch.tensor([[0.25, 0.5, 0.5, 0.5], [0.75, 0.5, 0.5, 0.5]])
    assert_same([xyxy((0.375, 0.375, 0.625, 0.625))], [torch.tensor([4])], priors)


def test_no_positives_and_no_objects():
    far = xyxy((0.6, 0.6, 0.9, 0.9))  # overlaps no default box: no forced match either
    priors = torch.tensor([[0.25, 0.25, 0.5, 0.5]])
    assert_same([far, far], [torch.tensor([1]), torch.tensor([2])], priors)
    assert_same([torch.zeros(0, 4)] * 3, [torch.zeros(0, dtype=torch.long)] * 3, PRIORS)
    assert_same([], [], PRIORS)


def test_many_objects_on_ssd300():
    g = torch.Generator().manual_seed(2)
    counts = torch.randint(1, 21, (8,), generator=g).tolist()
    boxes = [random_gt(g, n, min_size=0.01) for n in counts]
    labels = [torch.randint(1, 21, (n,), generator=g) for n in counts]
    assert_same(boxes, labels, default_boxes(SSD300_VOC))


def test_float64_priors_and_int32_labels():
    g = torch.Generator().manual_seed(3)
    boxes = [random_gt(g, 3).double(), random_gt(g, 2).double()]
    labels = [torch.tensor([1, 2, 3], dtype=torch.int32), torch.tensor([4, 5], dtype=torch.int32)]
    assert_same(boxes, labels, PRIORS.double())


GOOD = xyxy((0.1, 0.1, 0.2, 0.2))


@pytest.mark.parametrize(
    ("boxes", "labels"),
    [
        (torch.zeros(2, 1, 4), [torch.tensor([1])] * 2),
        ([GOOD, GOOD], [torch.tensor([1])]),
        ([GOOD, torch.zeros(2, 5)], [torch.tensor([1])] * 2),
        ([GOOD, GOOD], [torch.tensor([1]), torch.tensor([1, 2])]),
        ([GOOD, GOOD], [torch.tensor([1]), torch.tensor([1.0])]),
        ([GOOD, GOOD, GOOD], [torch.tensor([1]), torch.tensor([2]), torch.tensor([0])]),
        ([GOOD, xyxy((0.5, 0.5, 0.5, 0.7))], [torch.tensor([1]), torch.tensor([2])]),
        ([xyxy((0.1, 0.1, float("nan"), 0.2))], [torch.tensor([1])]),
    ],
)
def test_bad_input_gets_the_references_message(boxes, labels):
    with pytest.raises((TypeError, ValueError)) as expected:
        reference.assign_targets_batch(boxes, labels, PRIORS)
    with pytest.raises(expected.type) as got:
        fast.assign_targets_batch(boxes, labels, PRIORS)
    assert str(got.value) == str(expected.value)
    with pytest.raises(expected.type) as got:
        fast.assign_targets_cpu(boxes, labels, PRIORS)
    assert str(got.value) == str(expected.value)
    assert getattr(got.value, "image", None) == getattr(expected.value, "image", None)


def test_cpu_form_follows_the_size(monkeypatch):
    monkeypatch.setattr(fast, "CPU_PADDED_LIMIT", LIMIT)  # the real limit, in both runs
    calls = []
    real = fast.assign_targets_batch
    spy = lambda b, *a: calls.append(len(b)) or real(b, *a)  # noqa: E731
    monkeypatch.setattr(fast, "assign_targets_batch", spy)
    g = torch.Generator().manual_seed(4)
    few = [random_gt(g, 3) for _ in range(4)]  # 3 x 1524 default boxes: padded, one call
    fast.assign_targets_cpu(few, [torch.ones(3, dtype=torch.long)] * 4, PRIORS)
    assert calls == [4]
    calls.clear()
    many = [random_gt(g, 20) for _ in range(4)]  # 20 x 8732: image by image
    fast.assign_targets_cpu(many, [torch.ones(20, dtype=torch.long)] * 4, default_boxes(SSD300_VOC))
    assert calls == [1, 1, 1, 1]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_the_cpu_reference():
    g = torch.Generator().manual_seed(4)
    boxes = [random_gt(g, n) for n in (4, 0, 9)]
    labels = [torch.randint(1, 21, (len(b),), generator=g) for b in boxes]
    loc_c, cls_c = reference.assign_targets_batch(boxes, labels, PRIORS)
    loc_g, cls_g = fast.assign_targets_batch(boxes, labels, PRIORS.cuda())  # moved over
    assert torch.equal(cls_g.cpu(), cls_c)
    torch.testing.assert_close(loc_g.cpu(), loc_c)
