"""The training engine's step equals the reference train_step: loss, gradients, weights, guard."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest
import torch

from ssd_edu.config import TrainConfig
from ssd_edu.data import SHAPE_CLASSES, ShapesDataset
from ssd_edu.data.loader import collate_detections
from ssd_edu.fast import engine as engine_module
from ssd_edu.fast import inference
from ssd_edu.fast.engine import TrainEngine, uses_channels_last
from ssd_edu.loss import MultiBoxLoss
from ssd_edu.model import ssd_small
from ssd_edu.step import NonFiniteLossError, train_step

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


# fp32, as the reference step computes (the preset's bf16 is tested against it below)
CFG = TrainConfig.shapes_cpu(lr=0.05, warmup_iters=0, lr_steps=(), amp="none", channels_last=False)


def batch(seed: int = 0, n: int = 4):
    items = [ShapesDataset(n, seed=seed, max_objects=3)[i] for i in range(n)]
    images, boxes, labels, _ = collate_detections(items)
    return images, boxes, labels


def model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return ssd_small(len(SHAPE_CLASSES) + 1, width=16).train()


def reference_step(net, optimizer, images, boxes, labels):
    criterion = MultiBoxLoss(CFG.neg_pos_ratio, CFG.alpha)
    return train_step(net, optimizer, criterion, images, boxes, labels, net.priors)


def sgd(net):
    return torch.optim.SGD(net.parameters(), lr=CFG.lr, momentum=CFG.momentum, weight_decay=5e-4)


@pytest.mark.parametrize("deferred", [False, True])
def test_engine_step_equals_train_step(deferred):
    # the deferred guard runs the engine's own path (fused SGD, flags on the device) on the CPU
    ref, net = model(), model()
    optimizer = sgd(ref)
    engine = TrainEngine(net, net, CFG, torch.device("cpu"), deferred_guard=deferred)
    for seed in range(3):  # a few steps, so momentum and the schedule take part
        images, boxes, labels = batch(seed)
        want = reference_step(ref, optimizer, images, boxes, labels)
        got = engine.step(images, boxes, labels, tag=(seed + 1, [0, 1, 2, 3]))
        assert torch.equal(got, want)  # the same targets, forward and loss: bit for bit
        for (name, p), (_, q) in zip(net.named_parameters(), ref.named_parameters(), strict=True):
            assert torch.equal(p.grad, q.grad), name
            # fused and per-tensor SGD may round the update differently in the last bit
            torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7, msg=name)
    engine.flush()


def test_the_deferred_guard_names_the_bad_step_one_step_late():
    net = model()
    engine = TrainEngine(net, net, CFG, torch.device("cpu"), deferred_guard=True)
    images, boxes, labels = batch(0)
    engine.step(images, boxes, labels, tag=(1, [0, 1, 2, 3]))
    before = copy.deepcopy(net.state_dict())
    poisoned = images.clone()
    poisoned[2] = float("nan")
    engine.step(poisoned, boxes, labels, tag=(2, [4, 5, 6, 7]))  # returns: the flag is pending
    with pytest.raises(NonFiniteLossError) as info:
        engine.step(images, boxes, labels, tag=(3, [8, 9, 10, 11]))
    assert info.value.tag == (2, [4, 5, 6, 7]) and "the loss" in info.value.what
    # the fused step skipped itself from the bad step on: the weights are those before it
    for name, p in net.named_parameters():
        assert torch.equal(p, before[name]), name


def test_the_plain_guard_stops_before_the_step():
    net = model()
    engine = TrainEngine(net, net, CFG, torch.device("cpu"), deferred_guard=False)
    images, boxes, labels = batch(1)
    before = copy.deepcopy(net.state_dict())
    with pytest.raises(NonFiniteLossError) as info:
        engine.step(images * float("inf"), boxes, labels, tag=(1, [0, 1, 2, 3]))
    assert info.value.tag == (1, [0, 1, 2, 3])
    for name, p in net.named_parameters():
        assert torch.equal(p, before[name]), name


@pytest.mark.filterwarnings("ignore:Seems like `optimizer.step\\(\\)` has been overridden")
@pytest.mark.parametrize("deferred", [False, True])
def test_a_weight_that_overflows_in_the_step_is_named(deferred, monkeypatch):
    # a finite loss and gradients, then a step that leaves an infinite weight behind
    net = model()
    engine = TrainEngine(net, net, CFG, torch.device("cpu"), deferred_guard=deferred)
    step = engine.optimizer.step

    def overflowing_step(*args, **kwargs):
        out = step(*args, **kwargs)
        with torch.no_grad():
            net.loc_heads[0].weight[0, 0, 0, 0] = float("inf")
        return out

    monkeypatch.setattr(engine.optimizer, "step", overflowing_step)
    with pytest.raises(NonFiniteLossError) as info:
        engine.step(*batch(2), tag=(1, [3]))
        engine.flush()
    assert info.value.what == "the weight loc_heads.0.weight" and info.value.tag == (1, [3])


def test_labels_outside_the_model_are_named_with_the_batch():
    net = model()
    engine = TrainEngine(net, net, CFG, torch.device("cpu"))
    images, boxes, labels = batch(3)
    labels = [torch.full_like(lab, len(SHAPE_CLASSES) + 1) for lab in labels]
    with pytest.raises(ValueError, match=r"dataset indices \[7, 8, 9, 10\]\) is 5, but the model"):
        engine.step(images, boxes, labels, tag=(1, [7, 8, 9, 10]))


def test_state_round_trip_continues_the_schedule():
    net = model()
    engine = TrainEngine(net, net, TrainConfig.shapes_cpu(), torch.device("cpu"))
    for it in range(3):
        engine.step(*batch(it), tag=(it + 1, []))
    other = TrainEngine(net, net, TrainConfig.shapes_cpu(), torch.device("cpu"))
    other.load_state_dict(engine.state_dict())
    assert other.lr == engine.lr and other.scheduler.last_epoch == 3


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_engine_agrees_with_the_cpu_reference():
    cfg = TrainConfig.shapes_cpu(amp="none", channels_last=True, warmup_iters=0, lr_steps=())
    ref, net = model(), model().cuda()
    optimizer = sgd(ref)
    engine = TrainEngine(net, net, cfg, torch.device("cuda"))
    for seed in range(2):
        images, boxes, labels = batch(seed)
        want = reference_step(ref, optimizer, images, boxes, labels)
        got = engine.step(images, boxes, labels, tag=(seed + 1, []))
        torch.testing.assert_close(got.cpu(), want, rtol=1e-4, atol=1e-5)
    engine.flush()
    for (name, p), (_, q) in zip(net.named_parameters(), ref.named_parameters(), strict=True):
        torch.testing.assert_close(p.grad.cpu(), q.grad, rtol=1e-3, atol=1e-5, msg=name)


@pytest.mark.skipif(not inference.cpu_has_bf16(), reason="this CPU has no native bf16")
def test_cpu_bf16_step_is_close_to_the_fp32_step():
    ref, net = model(), model()
    optimizer = sgd(ref)
    net = net.to(memory_format=torch.channels_last)  # as train() hands it over
    cfg = replace(CFG, amp="bf16", channels_last=True)
    engine = TrainEngine(net, net, cfg, torch.device("cpu"))
    assert engine.amp == torch.bfloat16 and uses_channels_last(torch.device("cpu"), cfg)
    images, boxes, labels = batch(0)
    want = reference_step(ref, optimizer, images, boxes, labels)
    got = engine.step(images, boxes, labels, tag=(1, [0, 1, 2, 3]))
    assert got.dtype == torch.float32  # the loss is computed in fp32
    torch.testing.assert_close(got, want, rtol=2e-2, atol=1e-3)
    g1 = torch.cat([p.grad.flatten() for p in net.parameters()])
    g2 = torch.cat([q.grad.flatten() for q in ref.parameters()])
    # bf16 keeps 8 bits of mantissa: the gradient points the same way to within ~10 degrees
    # (0.986 measured on this freshly initialised model); the demo's mAP is the real check
    assert torch.nn.functional.cosine_similarity(g1, g2, dim=0) > 0.97


def test_cpu_autocast_only_where_bf16_is_native(monkeypatch):
    cpu = torch.device("cpu")
    for native in (True, False):
        monkeypatch.setattr(engine_module, "cpu_has_bf16", lambda native=native: native)
        bf16 = replace(CFG, amp="bf16", channels_last=True)
        assert engine_module._autocast_dtype(cpu, bf16) == (torch.bfloat16 if native else None)
        assert uses_channels_last(cpu, bf16) == native
        assert engine_module._autocast_dtype(cpu, replace(bf16, amp="fp16")) is None  # CUDA only
        assert engine_module._autocast_dtype(cpu, replace(bf16, amp="none")) is None
        assert not uses_channels_last(cpu, replace(bf16, channels_last=False))
        engine = TrainEngine(model(), model(), bf16, cpu)
        assert engine.fast == native  # fp32 on the CPU: the reference step
