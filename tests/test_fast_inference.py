"""The fast CPU forward pass (ssd_edu/fast/inference.py) against the plain fp32 network.

On a briefly trained shapes model, the bf16 channels_last path gives the fp32 boxes and scores
(within 1e-2 for every default box that can become a detection) and the fp32 mAP (within 0.005);
``precision="fp32"`` is the plain network bit for bit; the capability detection and the switch
are checked with the CPU's answer patched.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ssd_edu import predict as predict_module
from ssd_edu.boxes import decode
from ssd_edu.cli import detect as detect_cli
from ssd_edu.config import SMALL_WIDTH, TrainConfig, shapes_datasets
from ssd_edu.data import SHAPE_CLASSES, collate_detections
from ssd_edu.fast import inference
from ssd_edu.fast.detect import detect
from ssd_edu.model import ssd_small
from ssd_edu.predict import evaluate_model, predict
from ssd_edu.train import train

NATIVE_BF16 = inference.cpu_has_bf16()
needs_bf16 = pytest.mark.skipif(not NATIVE_BF16, reason="this CPU has no native bf16")


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """``(model, checkpoint, val_set)``: the CPU preset trained 150 iterations (mAP about 0.45)."""
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("shapes")
    cfg = TrainConfig.shapes_cpu(
        max_iters=150, lr_steps=(120,), warmup_iters=20, checkpoint_every=0, out_dir=str(out)
    )
    torch.manual_seed(0)
    train_set, val_set = shapes_datasets(150 * 16, 96)
    model = ssd_small(len(SHAPE_CLASSES) + 1, width=SMALL_WIDTH)
    result = train(cfg, model, train_set, SHAPE_CLASSES, device="cpu", progress=False)
    return result.model.eval(), out / "checkpoint.pt", val_set


@pytest.fixture
def cpu_flags(monkeypatch):
    """Set the flags the CPU reports (and forget the cached answer before and after)."""

    def set_flags(flags):
        monkeypatch.setattr(inference, "cpu_flags", lambda: frozenset(flags))
        inference.cpu_has_bf16.cache_clear()

    yield set_flags
    monkeypatch.undo()
    inference.cpu_has_bf16.cache_clear()


def _images(val_set, n=32):
    return collate_detections([val_set[i] for i in range(n)])[0]  # [n, 3, 128, 128]


@needs_bf16
def test_bf16_boxes_and_scores_agree_with_fp32(trained):
    model, _, val_set = trained
    images = _images(val_set)
    with torch.no_grad():
        loc, logits = model(images)  # [B, P, 4], [B, P, C + 1] the plain fp32 network
        fast_loc, fast_logits = inference.forward(model, images)  # auto: bf16 on this CPU
    assert fast_loc.dtype == fast_logits.dtype == torch.float32
    scores = logits.softmax(-1)[..., 1:]  # [B, P, C]
    wanted = scores.amax(-1) > 0.05  # [B, P] the default boxes that can become detections
    assert wanted.sum() > 100  # the model did learn something
    boxes, fast_boxes = decode(loc, model.priors), decode(fast_loc, model.priors)  # [B, P, 4]
    assert (fast_boxes - boxes).abs()[wanted].max() <= 1e-2
    assert (fast_logits.softmax(-1)[..., 1:] - scores).abs()[wanted].max() <= 1e-2
    # after NMS the detections are not compared one by one: where two neighbouring default boxes
    # score almost alike, fp32 may keep one and bf16 the other; the mAP below covers that step


@needs_bf16
def test_bf16_map_agrees_with_fp32(trained):
    model, _, val_set = trained
    fp32 = evaluate_model(model, val_set, SHAPE_CLASSES, precision="fp32").mean_ap
    fast = evaluate_model(model, val_set, SHAPE_CLASSES).mean_ap
    assert fp32 > 0.2
    assert abs(fast - fp32) < 0.005


def test_fp32_is_the_plain_network(trained):
    model, _, val_set = trained
    images = _images(val_set, 8)
    with torch.no_grad():
        loc, logits = model(images)
    expected = detect(loc, logits, model.priors)
    for got, want in zip(predict(model, images, precision="fp32"), expected):
        assert all(torch.equal(a, b) for a, b in zip(got, want))


@needs_bf16
def test_auto_is_bf16_here_and_leaves_the_model_alone(trained):
    model, _, val_set = trained
    assert inference.resolve_precision("auto", "cpu") == "bf16"
    before = {n: (p.data_ptr(), p.stride()) for n, p in model.named_parameters()}
    model.train()
    predict(model, _images(val_set, 4))
    assert model.training  # predict restores the mode it found
    assert before == {n: (p.data_ptr(), p.stride()) for n, p in model.named_parameters()}
    model.eval()


def test_fp32_channels_last_without_bf16_restores_the_layout(trained, cpu_flags):
    cpu_flags({"avx2"})  # a CPU without bf16: auto runs fp32, channels_last
    model, _, val_set = trained
    model.to(memory_format=torch.contiguous_format)  # train() hands back a channels_last model
    assert inference.resolve_precision("auto", "cpu") == "fp32"
    images = _images(val_set, 8)
    plain = predict(model, images, precision="fp32")
    fast = predict(model, images)
    for (b1, s1, l1), (b2, s2, l2) in zip(plain, fast):
        torch.testing.assert_close(b2, b1, atol=1e-4, rtol=0)  # summation order only
        torch.testing.assert_close(s2, s1, atol=1e-4, rtol=0)
        assert torch.equal(l2, l1)
    weights = [p for p in model.parameters() if p.ndim == 4]
    assert all(p.is_contiguous() for p in weights)  # back in the layout it came in
    model.to(memory_format=torch.channels_last)  # a model already channels_last stays so
    predict(model, images)
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in weights)
    model.to(memory_format=torch.contiguous_format)


def test_capability_detection_decides_auto(cpu_flags):
    for flags, expected in (
        ({"avx512f", "avx512_bf16"}, "bf16"),
        ({"amx_tile", "amx_bf16"}, "bf16"),
        ({"avx2", "avx512f", "amx_int8"}, "fp32"),
        (set(), "fp32"),
    ):
        cpu_flags(flags)
        assert inference.cpu_has_bf16() == (expected == "bf16")
        assert inference.resolve_precision("auto", "cpu") == expected
        assert inference.resolve_precision("auto", "cuda") == "fp32"  # off the CPU: as before
        assert inference.resolve_precision("fp32", "cpu") == "fp32"
        assert inference.resolve_precision("bf16", "cuda") == "bf16"


def test_capability_is_asked_once(cpu_flags, monkeypatch):
    cpu_flags({"amx_bf16"})
    calls = []
    monkeypatch.setattr(inference, "cpu_flags", lambda: calls.append(1) or frozenset())
    inference.cpu_has_bf16.cache_clear()
    assert [inference.cpu_has_bf16() for _ in range(3)] == [False] * 3
    assert calls == [1]


def test_cpu_flags_from_proc_cpuinfo(tmp_path, monkeypatch):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nflags\t\t: fpu sse avx512f avx512_bf16\n\n"
        "processor\t: 1\nflags\t\t: fpu sse avx512f amx_bf16\n"
    )
    monkeypatch.delattr(torch._C._cpu, "_get_cpu_capability")  # torch cannot say: read the file
    assert inference.cpu_flags(cpuinfo) == {"fpu", "sse", "avx512f", "avx512_bf16", "amx_bf16"}
    assert inference.cpu_flags(tmp_path / "missing") == frozenset()


def test_cpu_flags_from_torch_match_proc_cpuinfo():
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        pytest.skip("no /proc/cpuinfo")
    listed = {f for line in cpuinfo.read_text().splitlines() if line.startswith("flags")
              for f in line.partition(":")[2].split()}  # fmt: skip
    assert (inference.cpu_flags() & inference.BF16_FLAGS) == (listed & inference.BF16_FLAGS)


def test_bad_precision_is_rejected(trained):
    model, _, val_set = trained
    with pytest.raises(ValueError, match=r"precision must be one of .* got 'fp16'"):
        predict(model, _images(val_set, 1), precision="fp16")
    with pytest.raises(ValueError, match="precision"):
        evaluate_model(model, val_set, SHAPE_CLASSES, precision="half")


@pytest.mark.parametrize("flag, precision", [([], "auto"), (["--fp32"], "fp32")])
def test_detect_cli_fp32_switch(trained, tmp_path, monkeypatch, capsys, flag, precision):
    _, checkpoint, _ = trained
    photo = tmp_path / "photo.png"
    Image.fromarray(np.full((40, 60, 3), 128, np.uint8)).save(photo)
    seen = []
    real = predict_module.predict

    def spy(*args, **kwargs):
        seen.append(kwargs.get("precision"))
        return real(*args, **kwargs)

    monkeypatch.setattr(predict_module, "predict", spy)
    assert detect_cli.main([str(checkpoint), str(photo), "--out", str(tmp_path), *flag]) == 0
    assert seen == [precision]
