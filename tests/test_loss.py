"""MultiBoxLoss: a hand-worked case, a plain per-image reference, N = 0, stability, autocast."""

from __future__ import annotations

import math

import pytest
import torch

from ssd_edu.loss import MultiBoxLoss, confidence_loss_per_box, smooth_l1


def reference_loss(loc, logits, loc_t, cls_t, ratio=3, alpha=1.0):
    """Plain Python over images and boxes, in float64: returns (total, loc, conf)."""
    B, P, C = logits.shape
    loc_sum = conf_sum = 0.0
    n_total = 0
    for b in range(B):
        per_box = []
        for p in range(P):
            z = [float(v) for v in logits[b, p]]
            top = max(z)
            log_sum_exp = top + math.log(sum(math.exp(v - top) for v in z))
            per_box.append(log_sum_exp - z[int(cls_t[b, p])])
        positives = [p for p in range(P) if cls_t[b, p] > 0]
        negatives = [p for p in range(P) if cls_t[b, p] == 0]
        negatives.sort(key=lambda p: (-per_box[p], p))
        wanted = min(math.floor(ratio * len(positives)), len(negatives))
        conf_sum += sum(per_box[p] for p in positives + negatives[:wanted])
        for p in positives:
            for d in range(4):
                x = abs(float(loc[b, p, d]) - float(loc_t[b, p, d]))
                loc_sum += 0.5 * x * x if x < 1 else x - 0.5
        n_total += len(positives)
    n = max(n_total, 1)
    return (conf_sum + alpha * loc_sum) / n, loc_sum / n, conf_sum / n


def random_case(B=3, P=60, C=5, seed=0, scale=3.0, pos_rate=(0.05, 0.2, 0.0)):
    g = torch.Generator().manual_seed(seed)
    loc = torch.randn(B, P, 4, generator=g) * 2
    logits = torch.randn(B, P, C, generator=g) * scale
    loc_t = torch.randn(B, P, 4, generator=g)
    rate = torch.tensor([pos_rate[b % len(pos_rate)] for b in range(B)])[:, None]
    positive = torch.rand(B, P, generator=g) < rate
    cls_t = torch.where(positive, torch.randint(1, C, (B, P), generator=g), 0)
    return loc, logits, loc_t, cls_t


def test_hand_worked():
    # 3 boxes, 2 classes, all logits 0: every box's cross-entropy is log 2.
    # box 0 is positive (class 1): 1 positive -> min(3, 2) = 2 negatives, N = 1.
    logits = torch.zeros(1, 3, 2)
    cls_t = torch.tensor([[1, 0, 0]])
    loc_t = torch.zeros(1, 3, 4)
    loc = torch.tensor([[[0.5, 2.0, 0.0, 0.0], [9.0, 9.0, 9.0, 9.0], [9.0, 9.0, 9.0, 9.0]]])
    total, l_loc, l_conf = MultiBoxLoss()(loc, logits, loc_t, cls_t)
    # Smooth L1: 0.5 * 0.5^2 = 0.125 and 2.0 - 0.5 = 1.5; background rows (the 9s) are ignored
    torch.testing.assert_close(l_loc, torch.tensor(1.625))
    torch.testing.assert_close(l_conf, torch.tensor(3 * math.log(2)))
    torch.testing.assert_close(total, torch.tensor(1.625 + 3 * math.log(2)))
    total_a, l_loc_a, _ = MultiBoxLoss(alpha=0.5)(loc, logits, loc_t, cls_t)
    torch.testing.assert_close(total_a, l_conf + 0.5 * l_loc_a)


def test_smooth_l1_values():
    x = torch.tensor([-3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0])
    expected = torch.tensor([2.5, 0.5, 0.125, 0.0, 0.125, 0.5, 2.5])
    torch.testing.assert_close(smooth_l1(x), expected)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("ratio", [3, 1])
def test_matches_plain_reference(seed, ratio):
    loc, logits, loc_t, cls_t = random_case(seed=seed)
    got = MultiBoxLoss(neg_pos_ratio=ratio, alpha=0.7)(loc, logits, loc_t, cls_t)
    want = reference_loss(loc, logits, loc_t, cls_t, ratio=ratio, alpha=0.7)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, torch.tensor(w, dtype=torch.float32), rtol=1e-5, atol=1e-5)


def test_no_mining_uses_every_negative():
    loc, logits, loc_t, cls_t = random_case(seed=5)
    _, _, conf = MultiBoxLoss(neg_pos_ratio=None)(loc, logits, loc_t, cls_t)
    n = (cls_t > 0).sum()
    torch.testing.assert_close(conf, confidence_loss_per_box(logits, cls_t).sum() / n)


def test_batch_is_weighted_sum_of_images():
    loc, logits, loc_t, cls_t = random_case(B=4, seed=7, pos_rate=(0.05, 0.3, 0.0, 0.1))
    criterion = MultiBoxLoss()
    n_b = (cls_t > 0).sum(dim=1).float()  # [B]
    per_image = torch.stack(
        [
            torch.stack(
                criterion(loc[b : b + 1], logits[b : b + 1], loc_t[b : b + 1], cls_t[b : b + 1])
            )
            for b in range(4)
        ]
    )  # [B, 3]
    weighted = (per_image * n_b[:, None]).sum(0) / n_b.sum()
    torch.testing.assert_close(torch.stack(criterion(loc, logits, loc_t, cls_t)), weighted)
    # and the per-image average (the normalisation we do NOT use) really is different here
    assert not torch.allclose(per_image[n_b > 0, 0].mean(), weighted[0])


def test_no_positive_gives_zero_loss_and_zero_gradients():
    loc, logits, loc_t, _ = random_case(seed=3)
    loc.requires_grad_(True)
    logits.requires_grad_(True)
    cls_t = torch.zeros(loc.shape[:2], dtype=torch.long)
    loc_t[0, 0] = float("inf")  # garbage in a background row must not leak into the loss
    total, l_loc, l_conf = MultiBoxLoss()(loc, logits, loc_t, cls_t)
    assert total.item() == l_loc.item() == l_conf.item() == 0.0
    total.backward()
    assert torch.equal(loc.grad, torch.zeros_like(loc))
    assert torch.equal(logits.grad, torch.zeros_like(logits))


def test_large_logits_are_stable():
    loc, logits, loc_t, cls_t = random_case(seed=4, scale=1.0)
    logits = (logits * 1e4).requires_grad_(True)
    total, _, l_conf = MultiBoxLoss()(loc, logits, loc_t, cls_t)
    want = reference_loss(loc, logits.detach().double(), loc_t, cls_t)
    assert torch.isfinite(total)
    torch.testing.assert_close(
        l_conf.double(), torch.tensor(want[2], dtype=torch.float64), rtol=1e-5, atol=1e-2
    )
    total.backward()
    assert torch.isfinite(logits.grad).all()


def test_gradcheck_float64():
    # continuous random values: no ties in the mining order, so the mask is locally constant
    loc, logits, loc_t, cls_t = random_case(B=2, P=8, C=3, seed=11, pos_rate=(0.3, 0.2))
    assert (cls_t > 0).any()
    loc = loc.double().requires_grad_(True)
    logits = logits.double().requires_grad_(True)
    criterion = MultiBoxLoss()

    def total(loc, logits):
        return criterion(loc, logits, loc_t.double(), cls_t)[0]

    assert total(loc, logits).dtype == torch.float64
    assert torch.autograd.gradcheck(total, (loc, logits))


def test_autocast_bf16_on_cpu_is_close_to_float32():
    loc, logits, loc_t, cls_t = random_case(B=2, P=200, C=6, seed=9, pos_rate=(0.05, 0.1))
    head = torch.nn.Linear(8, 4 + 6)
    torch.manual_seed(0)
    features = torch.randn(2, 200, 8)
    criterion = MultiBoxLoss()

    def run():
        out = head(features)  # [B, P, 10]
        return criterion(out[..., :4], out[..., 4:], loc_t, cls_t)

    full = run()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = run()
    for f, m in zip(full, mixed):
        assert m.dtype == torch.float32
        torch.testing.assert_close(m, f, rtol=2e-2, atol=2e-2)
    mixed[0].backward()
    assert all(torch.isfinite(p.grad).all() for p in head.parameters())
    # bf16 inputs given directly: the loss equals the float32 loss of the same (rounded) values
    got = criterion(loc.bfloat16(), logits.bfloat16(), loc_t, cls_t)
    want = criterion(loc.bfloat16().float(), logits.bfloat16().float(), loc_t, cls_t)
    torch.testing.assert_close(torch.stack(got), torch.stack(want))


def test_rejects_bad_inputs():
    loc, logits, loc_t, cls_t = random_case(B=2, P=5, C=3)
    criterion = MultiBoxLoss()
    with pytest.raises(ValueError, match=r"loc must have shape \[B, P, 4\], got \[2, 5, 3\]"):
        criterion(loc[..., :3], logits, loc_t, cls_t)
    with pytest.raises(ValueError, match=r"logits must have shape \[B, P, C\] = \[2, 5, C\]"):
        criterion(loc, logits[:, :4], loc_t, cls_t)
    with pytest.raises(ValueError, match=r"C >= 2"):
        criterion(loc, logits[..., :1], loc_t, cls_t)
    with pytest.raises(
        ValueError, match=r"loc_t must have the shape of loc \[2, 5, 4\], got \[5, 4\]"
    ):
        criterion(loc, logits, loc_t[0], cls_t)
    with pytest.raises(
        ValueError, match=r"cls_t must have shape \[B, P\] = \[2, 5\], got \[2, 5, 1\]"
    ):
        criterion(loc, logits, loc_t, cls_t[..., None])
    with pytest.raises(TypeError, match="cls_t must be a long"):
        criterion(loc, logits, loc_t, cls_t.int())
    with pytest.raises(
        ValueError, match=r"cls_t values must be class indices in \[0, 2\].*from 0 to 3"
    ):
        criterion(
            loc, logits, loc_t, torch.full_like(cls_t, 3).index_fill_(1, torch.tensor([0]), 0)
        )
    with pytest.raises(ValueError, match="neg_pos_ratio must be a number >= 0 or None, got -1"):
        MultiBoxLoss(neg_pos_ratio=-1)
    with pytest.raises(ValueError, match="alpha must be >= 0, got -0.5"):
        MultiBoxLoss(alpha=-0.5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cuda_autocast_matches_cpu(dtype):
    loc, logits, loc_t, cls_t = random_case(B=2, P=300, C=6, seed=12)
    cpu = torch.stack(MultiBoxLoss()(loc, logits, loc_t, cls_t))
    cuda = [t.cuda() for t in (loc, logits, loc_t, cls_t)]
    with torch.autocast("cuda", dtype=dtype):
        got = torch.stack(MultiBoxLoss()(cuda[0].to(dtype), cuda[1].to(dtype), cuda[2], cuda[3]))
    assert got.dtype == torch.float32
    torch.testing.assert_close(got.cpu(), cpu, rtol=2e-2, atol=2e-2)


def test_smooth_l1_explorer_drawing():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ssd_edu.viz import plot_smooth_l1

    fig = plot_smooth_l1(beta=0.5)
    loss_ax, grad_ax = fig.axes
    assert [line.get_label() for line in loss_ax.lines][-1] == "Smooth L1 (beta=0.5)"
    smooth_grad = grad_ax.lines[-1].get_ydata()
    assert abs(smooth_grad).max() <= 1.0  # bounded gradient: the point of Smooth L1
    plt.close(fig)


def test_check_targets_off_skips_only_the_value_check():
    # the training loop checks its labels on the CPU and turns the loss's read-back off
    loc, logits = torch.zeros(1, 3, 4), torch.zeros(1, 3, 3)
    loc_t, cls_t = torch.zeros(1, 3, 4), torch.tensor([[0, 1, 2]])
    on = MultiBoxLoss()(loc, logits, loc_t, cls_t)
    off = MultiBoxLoss(check_targets=False)(loc, logits, loc_t, cls_t)
    assert all(torch.equal(a, b) for a, b in zip(on, off))
    with pytest.raises(ValueError, match=r"cls_t must have shape \[B, P\] = \[1, 3\]"):
        MultiBoxLoss(check_targets=False)(loc, logits, loc_t, cls_t[0])
