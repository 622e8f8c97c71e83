"""Backbones from the registry: shapes, finiteness, gradients; the widened first conv; the stems."""

from __future__ import annotations

import pytest
import torch

from facerec.errors import ConfigError
from facerec.recognition.backbones import STEMS, adapt_input_conv, create_backbone, feature_map_size, list_backbones


@pytest.mark.parametrize("stem", STEMS)
@pytest.mark.parametrize("name", list_backbones())
def test_every_backbone_and_stem_embeds_and_backpropagates(name: str, stem: str) -> None:
    torch.manual_seed(0)
    model = create_backbone(name, in_chans=10, stem=stem, img_size=32, embedding_size=64)
    images = torch.randn(2, 10, 32, 32)
    emb = model(images)
    assert emb.shape == (2, 64)
    assert torch.isfinite(emb).all()
    emb.pow(2).mean().backward()
    first = model.body[0].weight
    assert first.shape[1] == 10
    assert first.grad is not None and torch.isfinite(first.grad).all() and first.grad.abs().sum() > 0


@pytest.mark.parametrize("stem,expected", [("face", 7), ("imagenet", 4)])
def test_stem_sets_the_final_feature_map(stem: str, expected: int) -> None:
    model = create_backbone("resnet18", stem=stem, img_size=112).eval()
    with torch.no_grad():
        fmap = model.body(torch.zeros(1, 3, 112, 112))
    assert fmap.shape[-1] == expected == feature_map_size(112, stem)


def test_widened_conv_extra_filters_start_at_the_rgb_mean() -> None:
    conv = torch.nn.Conv2d(3, 8, 3, padding=1, bias=False)
    wide = adapt_input_conv(conv, 10)
    assert wide.weight.shape == (8, 10, 3, 3)
    assert torch.equal(wide.weight[:, :3], conv.weight)
    mean = conv.weight.mean(dim=1)
    for c in range(3, 10):
        assert torch.allclose(wide.weight[:, c], mean)


def test_backbone_first_conv_is_widened_with_the_mean() -> None:
    model = create_backbone("resnet18", in_chans=4, img_size=32)
    w = model.body[0].weight
    assert torch.allclose(w[:, 3], w[:, :3].mean(dim=1))


def test_single_channel_conv_sums_rgb() -> None:
    conv = torch.nn.Conv2d(3, 4, 3)
    grey = adapt_input_conv(conv, 1)
    x = torch.rand(1, 1, 8, 8)
    assert torch.allclose(grey(x), conv(x.expand(1, 3, 8, 8)), atol=1e-5)


def test_unknown_choices_are_refused_with_the_allowed_values() -> None:
    with pytest.raises(ConfigError, match="resnet18"):
        create_backbone("vgg")
    with pytest.raises(ConfigError, match="face"):
        create_backbone("resnet18", stem="tiny")
    with pytest.raises(ConfigError, match="unknown options"):
        create_backbone("resnet18", widht=2)


def test_none_options_are_dropped() -> None:
    model = create_backbone("resnet18", img_size=32, drop_path=None)
    assert model.embedding_size == 512
