"""The models: stage shapes, the VGG16 encoder against torchvision, weights loading, gradients."""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torchvision.models import vgg as tv_vgg

from lrnet import LrnetError
from lrnet.loss import StageLoss
from lrnet.models import MODELS, VGGEncoder, build_model
from lrnet.models.lrn import GateUnit


@pytest.mark.parametrize(
    ("height", "width", "expected"),
    [
        (360, 480, [(12, 15), (23, 30), (45, 60), (90, 120), (180, 240), (360, 480)]),
        (97, 131, [(4, 5), (7, 9), (13, 17), (25, 33), (49, 66), (97, 131)]),
        (32, 32, [(1, 1), (2, 2), (4, 4), (8, 8), (16, 16), (32, 32)]),
    ],
)
@pytest.mark.parametrize("name", ["lrn", "lrn_gated", "segnet_ds"])
def test_six_stages_coarse_to_fine(name: str, height: int, width: int, expected: list) -> None:
    model = build_model(name, 3, width=0.125).eval()
    with torch.no_grad():
        stages = model(torch.rand(1, 3, height, width))
    assert [tuple(s.shape[-2:]) for s in stages] == expected
    assert all(s.shape[:2] == (1, 3) for s in stages)


@pytest.mark.parametrize("num_classes", [1, 2, 11, 21, 37])
@pytest.mark.parametrize("name", list(MODELS))
def test_class_counts_and_train_eval_contract(name: str, num_classes: int) -> None:
    model = build_model(name, num_classes, width=0.125)
    x = torch.rand(2, 3, 65, 47)
    train_out = model.train()(x)
    with torch.no_grad():
        eval_out = model.eval()(x)
    assert isinstance(train_out, tuple) and isinstance(eval_out, tuple)
    assert len(train_out) == len(eval_out) == (1 if name == "segnet" else 6)
    assert train_out[-1].shape == eval_out[-1].shape == (2, num_classes, 65, 47)


def test_small_or_malformed_input_is_a_clear_error() -> None:
    model = build_model("lrn", 3, width=0.125)
    with pytest.raises(LrnetError, match="at least 32x40"):
        model(torch.rand(1, 3, 20, 40))
    with pytest.raises(LrnetError, match=r"\(N, 3, H, W\)"):
        model(torch.rand(1, 1, 64, 64))


def test_encoder_matches_torchvision_vgg16(tmp_path) -> None:
    reference = tv_vgg.vgg16(weights=None).features.eval()
    encoder = VGGEncoder("vgg16", 1.0)
    assert sum(p.numel() for p in encoder.parameters()) == 14_714_688
    assert sum(p.numel() for p in encoder.parameters()) == sum(
        p.numel() for p in reference.parameters()
    )
    # The same weights, through the local state-dict path a user would take.
    path = tmp_path / "vgg16.pth"
    torch.save(tv_vgg.vgg16(weights=None).state_dict(), path)
    full = torch.load(path, weights_only=True)
    reference.load_state_dict(
        {k.removeprefix("features."): v for k, v in full.items() if k.startswith("features.")}
    )
    encoder = VGGEncoder("vgg16", 1.0, weights=str(path)).eval()
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        skips, pooled = encoder(x)
        conv5_3 = reference[:30](x)  # through conv5_3 and its ReLU, before the last pool
    torch.testing.assert_close(skips[4], conv5_3)
    assert [s.shape[1] for s in skips] == [64, 128, 256, 512, 512]
    assert pooled.shape[-2:] == (2, 3)


def test_vgg16_bn_weights_through_the_torchvision_api(monkeypatch) -> None:
    source = tv_vgg.vgg16_bn(weights=None)
    for m in source.modules():
        if isinstance(m, torch.nn.BatchNorm2d):  # non-trivial statistics, so loading them matters
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    requested = []

    def fake_download(url, *args, **kwargs):  # the one step that needs the internet
        requested.append(url)
        return source.state_dict()

    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", fake_download)
    model = build_model("lrn", 4, encoder="vgg16_bn", encoder_weights="imagenet").eval()
    assert requested == [tv_vgg.VGG16_BN_Weights.IMAGENET1K_V1.url]
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        ours = model.encoder(model.normalize(x))[0][4]
        theirs = source.features.eval()[:43](model.normalize(x))
    torch.testing.assert_close(ours, theirs)


def test_imagenet_weights_offline_are_a_clear_error(monkeypatch) -> None:
    import urllib.error

    def offline(url, *args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", offline)
    url = tv_vgg.VGG16_BN_Weights.IMAGENET1K_V1.url
    with pytest.raises(LrnetError, match=re.escape(url) + r".*encoder_weights=PATH"):
        build_model("lrn", 4, encoder="vgg16_bn", encoder_weights="imagenet")


def test_bad_encoder_weights_are_clear_errors(tmp_path) -> None:
    with pytest.raises(LrnetError, match=r"missing\.pth"):
        VGGEncoder("vgg16", 1.0, weights=str(tmp_path / "missing.pth"))
    plain = tmp_path / "vgg16.pth"
    torch.save(tv_vgg.vgg16(weights=None).state_dict(), plain)
    with pytest.raises(LrnetError, match=r"vgg16\.pth.*vgg16_bn"):  # the file and the encoder
        VGGEncoder("vgg16_bn", 1.0, weights=str(plain))
    with pytest.raises(LrnetError, match=r"width 1\.0"):
        VGGEncoder("vgg16", 0.5, weights=str(plain))


@pytest.mark.parametrize("name", list(MODELS))
def test_every_parameter_gets_a_gradient(name: str) -> None:
    model = build_model(name, 4, width=0.125).train()
    stages = model(torch.rand(2, 3, 64, 64))
    target = torch.randint(0, 4, (2, 64, 64))
    loss, _ = StageLoss()(stages, target)
    loss.backward()
    missing = [
        n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0
    ]
    assert missing == []


def test_gate_multiplies_the_deeper_feature_into_the_skip() -> None:
    torch.manual_seed(0)
    gate = GateUnit(fine_channels=4, deep_channels=6, channels=3).eval()
    fine, other_fine = torch.randn(2, 1, 4, 8, 10)
    deep = torch.randn(1, 6, 4, 5)
    closed = torch.zeros(1, 6, 4, 5)  # conv (no bias), BN at init, ReLU: a zero deep branch
    with torch.no_grad():
        # G-FRNet: BN(fine branch * deep branch upsampled to the fine size); a product, so a
        # zero deep branch lets nothing of the fine feature through, and any other does.
        assert torch.equal(gate(fine, closed), gate(other_fine, closed))
        assert not torch.allclose(gate(fine, deep), gate(other_fine, deep))
        deep_up = F.interpolate(gate.deep(deep), size=(8, 10), mode="bilinear", align_corners=False)
        torch.testing.assert_close(gate(fine, deep), gate.norm(gate.fine(fine) * deep_up))


def test_gated_model_refines_through_its_gates() -> None:
    torch.manual_seed(0)
    model = build_model("lrn_gated", 5, width=0.125).eval()
    assert build_model("lrn", 5, width=0.125).gates is None and len(model.gates) == 5
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        before = model(x)
        hook = model.gates[2].register_forward_hook(lambda m, i, out: torch.zeros_like(out))
        after = model(x)
        hook.remove()
    # closing the third gate (conv3_3's skip, giving s_4) leaves s_1 .. s_3 and changes s_4 on
    same = [torch.equal(b, a) for b, a in zip(before, after, strict=True)]
    assert same == [True, True, True, False, False, False]


def test_unknown_model_is_a_clear_error() -> None:
    with pytest.raises(LrnetError, match="unknown model 'fcn'"):
        build_model("fcn", 3)


# ---------------------------------------------------------------- bad arguments (issue 21)


def test_segnet_refuses_skip_channels_it_would_drop() -> None:
    for name in ("segnet", "segnet_ds"):
        with pytest.raises(ValueError, match=rf"skip_channels=4 is an LRN option; {name}"):
            build_model(name, 3, width=0.125, skip_channels=4)


@pytest.mark.parametrize(
    ("num_classes", "error"),
    [(3.0, TypeError), (True, TypeError), ("3", TypeError), (0, ValueError), (-2, ValueError)],
)
def test_class_counts_must_be_whole_numbers(num_classes: object, error: type) -> None:
    for name in ("lrn", "segnet"):
        with pytest.raises(error, match=r"num_classes must be a whole number >= 1"):
            build_model(name, num_classes, width=0.125)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("width", "error"),
    [(-1.0, ValueError), (float("nan"), ValueError), (True, TypeError), ("1", TypeError)],
)
def test_width_must_be_a_positive_number(width: object, error: type) -> None:
    with pytest.raises(error, match=r"width must be a number > 0"):
        build_model("lrn", 3, width=width)  # type: ignore[arg-type]


def test_sizes_that_cannot_fit_are_refused_with_the_memory_they_need(monkeypatch) -> None:
    from lrnet import _memory
    from lrnet._errors import LrnetError

    with pytest.raises(LrnetError, match=r"width 1000.* needs at least .* TB of memory"):
        build_model("lrn", 3, width=1000.0)
    model = build_model("lrn", 3, width=0.125).eval()
    monkeypatch.setattr(_memory, "total_memory", lambda device="cpu": 100_000)  # 100 kB
    with pytest.raises(
        LrnetError, match=r"a batch of 2 images of 64x64 \(H x W\) needs at least 229.4 kB"
    ):
        model(torch.zeros(2, 3, 64, 64))


def test_encoder_weights_holding_objects_are_refused_without_torchs_unsafe_advice(
    tmp_path,
) -> None:
    """Issue 21: a pickle as model.encoder_weights quoted torch's advice to set
    weights_only=False, which would run the file's code."""
    import argparse

    pickled = tmp_path / "objects.pth"
    torch.save({"features.0.weight": argparse.Namespace(a=1)}, pickled)
    with pytest.raises(LrnetError, match=r"objects\.pth hold Python objects") as info:
        VGGEncoder("vgg16", 1.0, weights=str(pickled))
    not_weights = tmp_path / "photo.pth"
    not_weights.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    with pytest.raises(LrnetError, match=r"cannot read encoder weights .*photo\.pth") as other:
        VGGEncoder("vgg16", 1.0, weights=str(not_weights))
    for message in (str(info.value), str(other.value)):
        assert "weights_only=False" not in message and "\n" not in message
