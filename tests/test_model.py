"""The SSD network: shapes, output order, parameter count, gradients, VGG16 weight conversion."""

import copy

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from ssd_edu.imagenet import IMAGENET_MEAN, IMAGENET_STD
from ssd_edu.model import (
    CAFFE_BGR_MEAN,
    SSD,
    FixedFeatures,
    L2Norm,
    SmallBackbone,
    caffe_conv1_1_to_torchvision,
    flatten_head,
    freeze_features,
    layer_table,
    load_vgg16_backbone,
    receptive_fields,
    ssd300,
    ssd512,
    ssd_small,
)
from ssd_edu.priors import SSD128_SHAPES, SSD300_VOC, PriorConfig, default_boxes

VGG_CONVS = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
VGG_CHANNELS = (64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512)


@pytest.fixture(scope="module")
def model300():
    torch.manual_seed(0)
    return ssd300()


# --- SSD300 / SSD512 ----------------------------------------------------------------------------


def test_ssd300_shapes_and_gradient_reaches_every_parameter(model300):
    torch.manual_seed(0)
    loc, logits = model300(torch.randn(2, 3, 300, 300))
    assert loc.shape == (2, 8732, 4)
    assert logits.shape == (2, 8732, 21)
    model300.zero_grad()
    (loc.square().mean() + logits.logsumexp(-1).mean()).backward()
    for name, p in model300.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert p.grad.abs().sum() > 0, f"{name} got an all-zero gradient"
    model300.zero_grad(set_to_none=True)


def test_ssd300_parameter_count_matches_the_common_port(model300):
    # 26,285,486: the same architecture's count in the widely used PyTorch port (VOC, 21 classes)
    assert sum(p.numel() for p in model300.parameters()) == 26_285_486


def test_ssd300_attributes_and_priors_buffer(model300):
    assert model300.cfg == SSD300_VOC
    assert model300.num_classes == 21
    torch.testing.assert_close(model300.priors, default_boxes(SSD300_VOC))
    assert "priors" not in model300.state_dict()  # non-persistent: rebuilt from cfg, not saved
    assert model300.backbone.l2norm.weight.eq(20).all()
    for head in [*model300.loc_heads, *model300.conf_heads]:
        assert head.bias.eq(0).all()  # xavier weights, zero bias, as released


def test_ssd512_single_forward():
    model = ssd512().eval()
    with torch.no_grad():
        loc, logits = model(torch.zeros(1, 3, 512, 512))
    assert loc.shape == (1, 24564, 4) and logits.shape == (1, 24564, 21)
    assert model.priors.shape == (24564, 4)


def test_layer_table_names_shapes_and_parameters(model300):
    rows = {r["name"]: r for r in layer_table(model300)}
    assert rows["pool3"]["out_shape"] == [256, 38, 38]  # ceil_mode: 75 -> 38
    assert rows["conv4_3"]["out_shape"] == [512, 38, 38]
    assert rows["pool5"]["out_shape"] == [512, 19, 19]  # 3x3, stride 1: no downsampling
    assert rows["fc6"]["out_shape"] == [1024, 19, 19] and rows["fc6"]["params"] == 1024 * 4609
    assert rows["conv8_2"]["out_shape"] == [512, 10, 10]
    assert rows["conv11_2"]["out_shape"] == [256, 1, 1]
    assert sum(r["params"] for r in rows.values()) == 26_285_486


def test_autocast_bf16_forward_on_cpu(model300):
    model300.eval()
    x = torch.randn(1, 3, 300, 300, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        loc32, logits32 = model300(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loc16, logits16 = model300(x)
    model300.train()
    assert loc16.dtype == torch.bfloat16 and logits16.shape == (1, 8732, 21)
    assert torch.isfinite(logits16).all()
    # bf16 keeps about 3 significant digits: compare at a scale-relative tolerance
    scale = logits32.abs().max()
    assert (logits16.float() - logits32).abs().max() < 0.05 * scale
    assert (loc16.float() - loc32).abs().max() < 0.05 * loc32.abs().max()


# --- output order: a hand-checkable model --------------------------------------------------------

TINY = PriorConfig(
    image_size=32,
    feature_maps=(4, 2, 1),
    steps=(8, 16, 32),
    min_sizes=(8, 16, 24),
    max_sizes=(16, 24, 32),
    aspect_ratios=((2,), (2, 3), (2,)),
)


def test_output_rows_follow_default_box_order_reference_loop():
    torch.manual_seed(0)
    model = SSD(TINY, SmallBackbone(num_maps=3, width=8), num_classes=3).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        loc, logits = model(x)
        sources = model.backbone(x)
        # slow reference: walk maps, rows, columns, boxes in docs/design.md order
        ref_loc, ref_logits = [], []
        for k, src in enumerate(sources):
            lo, co = model.loc_heads[k](src), model.conf_heads[k](src)  # [B, k*4, f, f]
            n_boxes = TINY.boxes_per_location[k]
            for i in range(TINY.feature_maps[k]):
                for j in range(TINY.feature_maps[k]):
                    for a in range(n_boxes):
                        ref_loc.append(lo[:, a * 4 : (a + 1) * 4, i, j])
                        ref_logits.append(co[:, a * 3 : (a + 1) * 3, i, j])
    assert loc.shape == (2, TINY.num_priors, 4) == (2, 16 * 4 + 4 * 6 + 1 * 4, 4)
    torch.testing.assert_close(loc, torch.stack(ref_loc, dim=1))
    torch.testing.assert_close(logits, torch.stack(ref_logits, dim=1))


def test_channels_last_gives_the_same_output():
    torch.manual_seed(0)
    model = ssd_small(5).eval()
    x = torch.randn(2, 3, 128, 128)
    with torch.no_grad():
        ref = model(x)
        model = model.to(memory_format=torch.channels_last)
        out = model(x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(out[0], ref[0], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(out[1], ref[1], atol=1e-4, rtol=1e-4)


# --- the small CPU model -------------------------------------------------------------------------


def test_ssd_small_is_small_and_trains():
    torch.manual_seed(0)
    model = ssd_small(num_classes=4)
    n = sum(p.numel() for p in model.parameters())
    assert 500_000 <= n <= 2_000_000, n
    assert model.cfg == SSD128_SHAPES
    loc, logits = model(torch.randn(2, 3, 128, 128))
    assert loc.shape == (2, SSD128_SHAPES.num_priors, 4) and logits.shape[-1] == 4
    logits.mean().backward()
    assert all(p.grad is not None for p in model.conf_heads.parameters())


def test_priors_follow_the_model_to_another_dtype():
    model = ssd_small(3).to(torch.float64)
    assert model.priors.dtype == torch.float64


# --- L2Norm --------------------------------------------------------------------------------------


def test_l2norm_hand_worked():
    # one position with channels (3, 4): unit vector (0.6, 0.8), times the scale 20
    x = torch.tensor([3.0, 4.0]).reshape(1, 2, 1, 1)
    torch.testing.assert_close(L2Norm(2, scale=20)(x).flatten(), torch.tensor([12.0, 16.0]))


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 6), st.integers(1, 4), st.integers(0, 2**16))
def test_l2norm_every_position_has_norm_equal_to_the_scale(c, hw, seed):
    x = torch.randn(2, c, hw, hw, generator=torch.Generator().manual_seed(seed)) + 0.1
    y = L2Norm(c, scale=20)(x)
    torch.testing.assert_close(y.norm(dim=1), torch.full((2, hw, hw), 20.0))


# --- receptive fields ----------------------------------------------------------------------------


def rf_reference(layers, head_kernel=3):
    """Plain receptive-field recursion over (kernel, stride, dilation) triples."""
    rf, jump = 1, 1
    for k, s, d in layers:
        rf = rf + (d * (k - 1)) * jump
        jump = jump * s
    return rf + (head_kernel - 1) * jump


def test_receptive_fields_ssd300(model300):
    conv, pool = (3, 1, 1), (2, 2, 1)
    to_conv4_3 = [conv, conv, pool, conv, conv, pool, conv, conv, conv, pool, conv, conv, conv]
    to_fc7 = to_conv4_3 + [pool, conv, conv, conv, (3, 1, 1), (3, 1, 6), (1, 1, 1)]
    rfs = receptive_fields(model300)
    # conv4_3 alone sees 92 px (a figure often quoted for VGG16); the 3x3 head at stride 8 adds 16
    assert rfs[0] == 92 + 16 == rf_reference(to_conv4_3)
    assert rfs[1] == rf_reference(to_fc7)
    conv8 = to_fc7 + [(1, 1, 1), (3, 2, 1)]
    assert rfs[2] == rf_reference(conv8)
    assert all(a < b for a, b in zip(rfs, rfs[1:]))


def test_receptive_fields_small_hand_worked():
    # stem: 3x3 s2, 3x3, 3x3 s2, 3x3, 3x3 s2, 3x3 -> rf 1+2+4+4+8+8+16 = 43, jump 8; head +16
    model = ssd_small(3)
    assert receptive_fields(model)[0] == 43 + 16


# --- construction-time and input checks ----------------------------------------------------------


def test_construction_names_the_map_that_disagrees():
    wrong = PriorConfig.from_scales(128, (16, 8, 4, 2, 2), ((2,),) * 5)
    with pytest.raises(ValueError, match=r"map 4 \(blocks.3.0\) has shape \[128, 1, 1\].*= 2"):
        ssd_small(3, cfg=wrong)


def test_construction_rejects_a_wrong_number_of_maps():
    with pytest.raises(ValueError, match="backbone.out_channels lists 5 source maps.*has 3"):
        SSD(TINY, SmallBackbone(num_maps=5), num_classes=3)

    class Short(SmallBackbone):
        def forward(self, images):
            return super().forward(images)[:-1]

    with pytest.raises(ValueError, match="backbone returned 2 source maps but cfg.feature_maps"):
        SSD(TINY, Short(num_maps=3, width=8), num_classes=3)


def test_bad_num_classes_and_bad_images():
    with pytest.raises(ValueError, match="num_classes must be an int >= 2.*got 1"):
        ssd_small(1)
    model = ssd_small(3)
    with pytest.raises(ValueError, match=r"images must have shape \[B, 3, 128, 128\].*\[2, 3, 64"):
        model(torch.zeros(2, 3, 64, 64))


# --- VGG16 weights --------------------------------------------------------------------------------


def torchvision_vgg16_state(gen):
    """A random state dict in torchvision's VGG16 layout (fc layers left mostly unwritten)."""
    state, in_ch = {}, 3
    for i, c in zip(VGG_CONVS, VGG_CHANNELS):
        state[f"features.{i}.weight"] = torch.randn(c, in_ch, 3, 3, generator=gen)
        state[f"features.{i}.bias"] = torch.randn(c, generator=gen)
        in_ch = c
    # 411 MB if filled: only the entries the decimation keeps get values (the rest stay untouched)
    fc6 = torch.empty(4096, 25088)
    fc6.view(4096, 512, 7, 7)[::4, :, ::3, ::3] = torch.randn(1024, 512, 3, 3, generator=gen)
    fc7 = torch.empty(4096, 4096)
    fc7[::4, ::4] = torch.randn(1024, 1024, generator=gen)
    state["classifier.0.weight"], state["classifier.0.bias"] = fc6, torch.randn(4096, generator=gen)
    state["classifier.3.weight"], state["classifier.3.bias"] = fc7, torch.randn(4096, generator=gen)
    state["classifier.6.weight"] = torch.zeros(1000, 4096)
    state["classifier.6.bias"] = torch.zeros(1000)
    return state


def reduced_vgg16_state(gen):
    state, in_ch = {}, 3
    for i, c in zip(VGG_CONVS, VGG_CHANNELS):
        state[f"{i}.weight"] = torch.randn(c, in_ch, 3, 3, generator=gen)
        state[f"{i}.bias"] = torch.randn(c, generator=gen)
        in_ch = c
    state["31.weight"] = torch.randn(1024, 512, 3, 3, generator=gen)
    state["31.bias"] = torch.randn(1024, generator=gen)
    state["33.weight"] = torch.randn(1024, 1024, 1, 1, generator=gen)
    state["33.bias"] = torch.randn(1024, generator=gen)
    return state


def test_load_torchvision_format_decimates_fc6_fc7(model300):
    state = torchvision_vgg16_state(torch.Generator().manual_seed(0))
    summary = load_vgg16_backbone(model300, state)
    vgg = model300.backbone.vgg
    for i in VGG_CONVS:
        assert torch.equal(vgg[i].weight, state[f"features.{i}.weight"])
        assert torch.equal(vgg[i].bias, state[f"features.{i}.bias"])
    fc6, fc7 = state["classifier.0.weight"], state["classifier.3.weight"]
    # slow reference: fc6 flattens pool5 as (channel, row, column); keep filter 4o, taps 3y, 3x
    for o, c, y, x in [(0, 0, 0, 0), (5, 17, 1, 2), (1023, 511, 2, 2), (300, 3, 2, 0)]:
        assert vgg[31].weight[o, c, y, x] == fc6[4 * o, c * 49 + (3 * y) * 7 + 3 * x]
    assert torch.equal(vgg[31].weight, fc6.view(4096, 512, 7, 7)[::4, :, ::3, ::3])
    assert torch.equal(vgg[31].bias, state["classifier.0.bias"][::4])
    for o, i in [(0, 0), (7, 9), (1023, 1023)]:
        assert vgg[33].weight[o, i, 0, 0] == fc7[4 * o, 4 * i]
    assert torch.equal(vgg[33].bias, state["classifier.3.bias"][::4])
    assert summary.format == "torchvision"
    assert summary.ignored == ["classifier.6.bias", "classifier.6.weight"]
    assert len(summary.loaded) == 30 and "fc6" in str(summary)


def test_load_reduced_format_from_a_path(model300, tmp_path):
    state = reduced_vgg16_state(torch.Generator().manual_seed(1))
    torch.save(state, tmp_path / "vgg16_reducedfc.pth")
    summary = load_vgg16_backbone(model300, tmp_path / "vgg16_reducedfc.pth")
    vgg = model300.backbone.vgg
    for i in (*VGG_CONVS[1:], 31, 33):
        assert torch.equal(vgg[i].weight, state[f"{i}.weight"])
        assert torch.equal(vgg[i].bias, state[f"{i}.bias"])
    w, b = caffe_conv1_1_to_torchvision(state["0.weight"], state["0.bias"])
    assert torch.equal(vgg[0].weight, w) and torch.equal(vgg[0].bias, b)
    assert summary.format.startswith("reduced") and "conv1_1 rewritten" in str(summary)


def test_caffe_conv1_1_conversion_gives_the_same_output_inside_the_image():
    gen = torch.Generator().manual_seed(2)
    w = torch.randn(8, 3, 3, 3, generator=gen, dtype=torch.float64)
    b = torch.randn(8, generator=gen, dtype=torch.float64)
    rgb = torch.rand(1, 3, 6, 6, generator=gen, dtype=torch.float64)  # one image, RGB in [0, 1]
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float64)[:, None, None]
    std = torch.tensor(IMAGENET_STD, dtype=torch.float64)[:, None, None]
    ours = (rgb - mean) / std
    caffe = rgb.flip(1) * 255 - torch.tensor(CAFFE_BGR_MEAN, dtype=torch.float64)[:, None, None]
    w2, b2 = caffe_conv1_1_to_torchvision(w, b)
    out_caffe = F.conv2d(caffe, w, b, padding=1)
    out_ours = F.conv2d(ours, w2, b2, padding=1)
    torch.testing.assert_close(out_ours[..., 1:-1, 1:-1], out_caffe[..., 1:-1, 1:-1])
    # at the border the zero padding means different things to the two conventions
    assert not torch.allclose(out_ours[..., 0, 0], out_caffe[..., 0, 0])


def test_load_reports_missing_and_misshaped_keys_and_changes_nothing(model300):
    before = model300.backbone.vgg[0].weight.clone()
    state = reduced_vgg16_state(torch.Generator().manual_seed(3))
    del state["5.weight"]
    state["33.weight"] = torch.zeros(1024, 1024)
    with pytest.raises(ValueError) as err:
        load_vgg16_backbone(model300, state)
    msg = str(err.value)
    assert "missing key '5.weight' (expected shape [128, 64, 3, 3])" in msg
    assert "key '33.weight' has shape [1024, 1024], expected [1024, 1024, 1, 1]" in msg
    assert torch.equal(model300.backbone.vgg[0].weight, before)

    tv = {"features.0.weight": torch.zeros(64, 3, 3, 3), "classifier.0.weight": torch.zeros(4096)}
    with pytest.raises(ValueError, match=r"key 'classifier.0.weight' has shape \[4096\], expected"):
        load_vgg16_backbone(model300, tv)
    with pytest.raises(ValueError, match="look like neither torchvision"):
        load_vgg16_backbone(model300, {"conv1.weight": torch.zeros(1)})
    with pytest.raises(TypeError, match="VGG16Backbone.*SmallBackbone"):
        load_vgg16_backbone(ssd_small(3), {})


def test_new_layers_start_as_released():
    model = ssd_small(3)
    for m in model.loc_heads:
        assert isinstance(m, nn.Conv2d) and m.bias.eq(0).all()
        bound = (6 / (m.in_channels * 9 + m.out_channels * 9)) ** 0.5  # xavier uniform
        assert m.weight.abs().max() <= bound


def test_flatten_head_hand_worked_and_rejects_bad_shapes():
    # 1x2 map, k = 2 boxes of n = 2 values: channel a*2 + v at column j is 10 * (a*2 + v) + j
    out = (torch.arange(4).reshape(1, 4, 1, 1) * 10 + torch.arange(2).reshape(1, 1, 1, 2)).float()
    rows = flatten_head(out, 2)
    expected = [[0, 10], [20, 30], [1, 11], [21, 31]]  # (j=0, a=0), (j=0, a=1), (j=1, a=0), ...
    assert rows.tolist() == [[[float(v) for v in r] for r in expected]]
    with pytest.raises(ValueError, match=r"out must have shape \[B, k \* 4, H, W\], got \[1, 6"):
        flatten_head(torch.zeros(1, 6, 2, 2), 4)


# --- the notebook's drawings ----------------------------------------------------------------------


def test_notebook_drawings(model300):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ssd_edu.viz import draw_fc6_decimation, plot_receptive_fields, receptive_field_figure

    rfs = receptive_fields(model300)
    fig = draw_fc6_decimation()
    assert len(fig.axes) == 3
    fig, ax = plt.subplots()
    plot_receptive_fields(ax, SSD300_VOC, rfs)
    assert len(ax.get_legend().get_texts()) == 4  # receptive field and three box sizes
    with pytest.raises(ValueError, match="one entry per feature map"):
        plot_receptive_fields(ax, SSD300_VOC, rfs[:2])
    image = torch.rand(3, 40, 60, generator=torch.Generator().manual_seed(0))
    fig, rows = receptive_field_figure(image, SSD300_VOC, rfs, k=2, x=0.65, y=0.35)
    # map 2 is 10x10 with 6 boxes per cell; (0.65, 0.35) is in cell (i=3, j=6)
    first = 38 * 38 * 4 + 19 * 19 * 6 + (3 * 10 + 6) * 6
    assert rows == list(range(first, first + 6))
    # the 10x10 map's grid spans 320 px (step 32): x = y = 0.95 (285 px) is in cell 8, not 9,
    # and that cell's default boxes are centred within half a step of the point
    fig, rows = receptive_field_figure(image, SSD300_VOC, rfs, k=2, x=0.95, y=0.95)
    first = 38 * 38 * 4 + 19 * 19 * 6 + (8 * 10 + 8) * 6
    assert rows == list(range(first, first + 6))
    centres = default_boxes(SSD300_VOC)[rows, :2]  # [6, 2] cxcy fractions
    assert ((centres - 0.95).abs() <= 16 / 300).all()
    with pytest.raises(ValueError, match="k must be a map index in"):
        receptive_field_figure(image, SSD300_VOC, rfs, k=6)
    plt.close("all")


def test_freeze_features_keeps_the_maps_and_leaves_only_the_heads():
    torch.manual_seed(0)
    model = ssd_small(num_classes=3, width=8)
    images = torch.rand(2, 3, 128, 128, generator=torch.Generator().manual_seed(1))
    backbone = model.backbone
    reference = copy.deepcopy(backbone).train()
    with torch.no_grad():
        want = reference(images)  # batch statistics
    maps = freeze_features(model, images)
    assert isinstance(model.backbone, FixedFeatures) and not backbone.training
    assert model.backbone.out_channels == tuple(backbone.out_channels)
    for got, w in zip(maps, want):
        torch.testing.assert_close(got, w)
    # the heads now read the stored maps whatever the input, and hold every parameter left
    loc, logits = model(images)
    loc2, logits2 = model(torch.zeros_like(images))
    assert torch.equal(loc, loc2) and torch.equal(logits, logits2)
    names = [n for n, _ in model.named_parameters()]
    assert names and all(n.startswith(("loc_heads.", "conf_heads.")) for n in names)
    with pytest.raises(ValueError, match=r"images must have shape \[B, 3, H, W\], got \[3, 8, 8\]"):
        freeze_features(ssd_small(num_classes=3, width=8), torch.zeros(3, 8, 8))


# ---------------------------------------------------------------- the effective receptive field


def test_mass_side_and_support_side_hand_worked():
    from ssd_edu.model import mass_side, support_side

    grad = torch.zeros(9, 9)
    grad[4, 4] = 6.0  # the peak
    grad[3:6, 3:6] += 1.0  # a 3x3 ring around it (9 ones, the centre included)
    grad[0, 8] = 1.0  # one far corner
    assert support_side(grad) == 6  # rows 0..5, columns 3..8: the bounding square is 6 wide
    assert support_side(torch.zeros(4, 4)) == 0
    total = float(grad.sum())  # 16
    assert mass_side(grad, 7 / total) == 1  # the peak alone: 6 + 1
    assert mass_side(grad, 15 / total) == 3  # the 3x3 square
    assert mass_side(grad, 1.0) == 9  # the far corner needs the whole map


def test_input_gradient_stays_inside_the_theoretical_field(model300):
    from ssd_edu.model import input_gradient, mass_side, support_side

    grad = input_gradient(model300, image_size=150)  # map 0 is 19x19; its window is 108 px
    assert grad.shape == (150, 150) and (grad >= 0).all()
    assert support_side(grad) == receptive_fields(model300)[0] == 108
    assert mass_side(grad, 0.5) < 54  # most of the influence is near the centre
    assert all(p.grad is None for p in model300.parameters())  # nothing accumulated


def test_architecture_blocks_and_figure_come_from_the_model(model300):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ssd_edu.viz import architecture_blocks, plot_architecture

    blocks = architecture_blocks(model300)
    assert [b["name"] for b in blocks] == [
        "conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7",
        "conv8", "conv9", "conv10", "conv11",
    ]  # fmt: skip
    assert [b["part"] for b in blocks].count("extra") == 4
    sources = [b for b in blocks if "source" in b]
    assert [b["source"] for b in sources] == list(range(6))
    assert sum(b["head"]["boxes"] for b in sources) == 8732
    assert sum(b["params"] for b in blocks) + sum(
        p.numel() for n, p in model300.named_parameters() if "_heads." in n
    ) == sum(p.numel() for p in model300.parameters())
    fig = plot_architecture(model300)
    texts = " ".join(t.get_text() for t in fig.axes[0].texts)
    assert "8732 rows" in texts and "5776 boxes" in texts and "+ L2Norm" in texts
    plt.close(fig)
