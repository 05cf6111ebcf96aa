"""The batched detect of ssd_edu.fast equals the reference detect exactly, ties included."""

from __future__ import annotations

import pytest
import torch

from ssd_edu import nms as reference
from ssd_edu.fast import detect as fast_detect
from ssd_edu.fast import nms as fast
from ssd_edu.priors import SSD128_SHAPES, default_boxes


def outputs(batch: int, num_classes: int, seed: int, background: float = 0.0):
    priors = default_boxes(SSD128_SHAPES)  # [P, 4]
    g = torch.Generator().manual_seed(seed)
    loc = torch.randn(batch, len(priors), 4, generator=g) * 0.5  # [B, P, 4]
    logits = torch.randn(batch, len(priors), num_classes, generator=g) * 2  # [B, P, C]
    logits[..., 0] += background
    return loc, logits, priors


DETECT_CASES = [
    (0, 0.0, {}),  # flat: every class full of candidates
    (1, 3.0, {}),  # confident background: few candidates, classes of different lengths
    (2, 1.0, dict(top_k=17, candidates_per_class=9)),
    (3, 2.0, dict(score_threshold=0.3, iou_threshold=0.6)),
    (4, 0.0, dict(iou_threshold=0.0, top_k=1000)),  # any overlap suppresses
    (5, 1.0, dict(iou_threshold=1.0, score_threshold=0.0)),  # nothing suppresses, nothing cut
]


def assert_same_detections(got, want):
    assert len(got) == len(want)
    for (boxes, scores, labels), (w_boxes, w_scores, w_labels) in zip(got, want, strict=True):
        assert torch.equal(labels, w_labels) and torch.equal(scores, w_scores)
        assert torch.equal(boxes, w_boxes)
        assert boxes.dtype == w_boxes.dtype and labels.dtype == w_labels.dtype


@pytest.mark.parametrize("all_at_once", [False, True])
@pytest.mark.parametrize(("seed", "background", "kwargs"), DETECT_CASES)
def test_detect_equals_the_reference(seed, background, kwargs, all_at_once, monkeypatch):
    loc, logits, priors = outputs(5, 6, seed=seed, background=background)
    logits = (logits * 2).round() / 2  # equal scores within and across classes
    logits[3, :, 0] = 60.0  # an image without detections
    want = reference.detect(loc, logits, priors, **kwargs)
    monkeypatch.setattr(fast_detect, "_MAX_PAIRS", 1)  # all at once: a few images per chunk
    got = fast_detect.detect(loc, logits, priors, all_at_once=all_at_once, **kwargs)
    if kwargs.get("score_threshold", 0.01) > 0:  # scores of e^-60 pass a threshold of 0
        assert len(got[3][0]) == 0
    assert_same_detections(got, want)


def test_ties_at_the_candidate_cut_go_to_the_lower_default_box():
    # flat logits: every default box scores the same in every class, so the 400 (here 7)
    # candidates of a class are decided by the tie rule alone
    loc, logits, priors = outputs(2, 3, seed=0)
    logits = torch.zeros_like(logits)
    logits[1, ::5, 1] = 1.0  # image 1: some boxes above the rest, then a tie at the cut
    for all_at_once in (False, True):
        got = fast_detect.detect(
            loc, logits, priors, candidates_per_class=7, all_at_once=all_at_once
        )
        assert_same_detections(got, reference.detect(loc, logits, priors, candidates_per_class=7))
    want = reference.score_candidates(loc, logits, priors, candidates_per_class=7)
    boxes, ranked, idx = fast_detect.ranked_candidates(loc, logits, priors, 7)
    for b, (w_boxes, w_scores, _) in enumerate(want):
        assert torch.equal(boxes[b][idx[b].flatten()], w_boxes)
        assert torch.equal(ranked[b].flatten(), w_scores)


def test_detect_never_builds_a_large_overlap_matrix(monkeypatch):
    sizes = []
    original = fast._overlaps

    def spy(columns, i, j):
        sizes.append(len(i) * len(j))
        return original(columns, i, j)

    monkeypatch.setattr(fast, "_overlaps", spy)
    loc, logits, priors = outputs(1, 21, seed=3)  # 20 classes, all above 0.01
    fast_detect.detect(loc, logits, priors, candidates_per_class=300, all_at_once=False)
    # a block of BLOCK_SIZE boxes against at most one class's candidates
    assert max(sizes) <= fast.BLOCK_SIZE * 300


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_detect_on_cuda_matches_the_cpu_reference():
    # CUDA's default is the all-at-once method
    loc, logits, priors = outputs(4, 6, seed=7, background=2.0)
    want = reference.detect(loc, logits, priors)
    got = fast_detect.detect(loc.cuda(), logits.cuda(), priors.cuda())
    for (boxes, scores, labels), (w_boxes, w_scores, w_labels) in zip(got, want, strict=True):
        assert torch.equal(labels.cpu(), w_labels)
        torch.testing.assert_close(scores.cpu(), w_scores)
        torch.testing.assert_close(boxes.cpu(), w_boxes)
