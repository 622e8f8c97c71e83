"""Recognition backbones: a registry of torchvision ResNets with a face stem and an embedding neck.

``create_backbone(name, in_chans=..., stem=...)`` returns a module mapping images ``[B, C, S, S]``
(float, normalised) to embeddings ``[B, E]`` (not L2-normalised; the margin head and the verification
code normalise). Nothing is downloaded: every network starts from random weights.

Stems (what happens before ``layer1``):
- ``face`` (default), as insightface's iresnet: 3x3 stride-1 conv, BN, PReLU, no max-pool; the first
  block of ``layer1`` strides by 2 instead. A 112 px crop ends as a 7x7 map (total stride 16).
- ``imagenet``: torchvision's 7x7 stride-2 conv and 3x3 max-pool (total stride 32): 112 px -> 4x4.
  About a quarter of the compute, but the final map is too coarse for faces (see docs/training.md).

Neck (face-recognition practice, insightface's ``features`` block): BN2d -> dropout -> flatten ->
Linear(C*h*w -> E) -> BN1d. It keeps the spatial layout, which global pooling would throw away.
ResNet-50's 2048 channels are first projected to 512 by a 1x1 conv so the Linear stays iresnet-sized.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from facerec.errors import ConfigError, choice_error

STEMS = ("face", "imagenet")
NECK_CHANNELS = 512          # channels entering the neck's Linear (ResNet-50's 2048 are projected)

_BACKBONES: dict[str, Callable[[], nn.Module]] = {}


def register_backbone(name: str) -> Callable:
    """Decorator: ``fn() -> torchvision ResNet`` (3 input channels, random weights)."""

    def wrap(fn: Callable) -> Callable:
        _BACKBONES[name] = fn
        return fn

    return wrap


def list_backbones() -> list[str]:
    return sorted(_BACKBONES)


@register_backbone("resnet18")
def _resnet18() -> nn.Module:
    from torchvision.models import resnet18

    return resnet18(weights=None)


@register_backbone("resnet34")
def _resnet34() -> nn.Module:
    from torchvision.models import resnet34

    return resnet34(weights=None)


@register_backbone("resnet50")
def _resnet50() -> nn.Module:
    from torchvision.models import resnet50

    return resnet50(weights=None)


def adapt_input_conv(conv: nn.Conv2d, in_chans: int) -> nn.Conv2d:
    """A copy of an RGB first conv that takes ``in_chans`` channels.

    Channels 0-2 keep the RGB filters; every extra channel (heatmaps, mask) starts at the mean of the
    three RGB filters, so an extra input that looks like the image's brightness gets a familiar
    response. ``in_chans == 1`` sums the RGB filters (a grey image as R=G=B gives the same output).
    """
    if conv.in_channels != 3:
        raise ConfigError(f"adapt_input_conv: expected an RGB conv (3 input channels), found {conv.in_channels}")
    if in_chans == 3:
        return conv
    if in_chans < 1 or in_chans == 2:
        raise ConfigError(f"adapt_input_conv: in_chans must be 1 or >= 3, found {in_chans}")
    new = nn.Conv2d(in_chans, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                    conv.dilation, conv.groups, bias=conv.bias is not None)
    with torch.no_grad():
        w = conv.weight
        if in_chans == 1:
            new.weight.copy_(w.sum(dim=1, keepdim=True))
        else:
            new.weight[:, :3] = w
            new.weight[:, 3:] = w.mean(dim=1, keepdim=True)
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    return new


def feature_map_size(img_size: int, stem: str) -> int:
    """Side of the last feature map: every stride-2 stage maps n -> ceil(n / 2)."""
    size = img_size
    for _ in range(4 if stem == "face" else 5):
        size = math.ceil(size / 2)
    return size


def _use_face_stem(resnet: nn.Module) -> None:
    """Turn torchvision's stem into iresnet's: 3x3/1 conv + BN + PReLU, no max-pool, layer1 strides."""
    width = resnet.conv1.out_channels
    resnet.conv1 = nn.Conv2d(3, width, kernel_size=3, stride=1, padding=1, bias=False)
    resnet.relu = nn.PReLU(width)
    resnet.maxpool = nn.Identity()
    first = resnet.layer1[0]
    bottleneck = hasattr(first, "conv3")
    (first.conv2 if bottleneck else first.conv1).stride = (2, 2)   # torchvision v1.5: Bottleneck strides in conv2
    if first.downsample is None:                                   # BasicBlock: 64 -> 64, add a strided shortcut
        out = first.conv2.out_channels
        first.downsample = nn.Sequential(nn.Conv2d(first.conv1.in_channels, out, 1, stride=2, bias=False),
                                         nn.BatchNorm2d(out))
    else:
        first.downsample[0].stride = (2, 2)


def embedding_neck(channels: int, spatial: int, embedding_size: int, dropout: float) -> nn.Sequential:
    """[B, channels, spatial, spatial] -> [B, embedding_size]; see the module docstring."""
    layers: list[nn.Module] = []
    if channels > NECK_CHANNELS:
        layers.append(nn.Conv2d(channels, NECK_CHANNELS, 1, bias=False))
        channels = NECK_CHANNELS
    layers += [
        nn.BatchNorm2d(channels),
        nn.Dropout(dropout),
        nn.Flatten(1),
        nn.Linear(channels * spatial * spatial, embedding_size),
        nn.BatchNorm1d(embedding_size),
    ]
    return nn.Sequential(*layers)


class Backbone(nn.Module):
    """Body (stem + 4 ResNet stages) then the embedding neck: ``[B, C, S, S] -> [B, E]``."""

    def __init__(self, body: nn.Sequential, neck: nn.Sequential, *, name: str, stem: str,
                 in_chans: int, embedding_size: int, img_size: int) -> None:
        super().__init__()
        self.body = body
        self.neck = neck
        self.name, self.stem, self.in_chans = name, stem, in_chans
        self.embedding_size, self.img_size = embedding_size, img_size

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.neck(self.body(images))


def create_backbone(name: str, *, in_chans: int = 3, embedding_size: int = 512, stem: str = "face",
                    dropout: float = 0.0, img_size: int = 112, **kwargs) -> Backbone:
    """Build a registered backbone. ``None`` keyword values are dropped, so a CLI default of ``None``
    never overrides a model default (as timm's ``create_model``); other unknown keywords are refused."""
    unknown = sorted(k for k, v in kwargs.items() if v is not None)
    if unknown:
        raise ConfigError(f"create_backbone: unknown options {unknown}")
    if name not in _BACKBONES:
        raise choice_error("backbone", name, list_backbones())
    if stem not in STEMS:
        raise choice_error("stem", stem, STEMS)
    if img_size < 16:
        raise ConfigError(f"create_backbone: img_size must be >= 16 pixels, found {img_size}")
    if not 0.0 <= dropout < 1.0:
        raise ConfigError(f"create_backbone: dropout must be in [0, 1), found {dropout}")
    resnet = _BACKBONES[name]()
    if stem == "face":
        _use_face_stem(resnet)
    resnet.conv1 = adapt_input_conv(resnet.conv1, in_chans)
    body = nn.Sequential(resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool,
                         resnet.layer1, resnet.layer2, resnet.layer3, resnet.layer4)
    neck = embedding_neck(resnet.fc.in_features, feature_map_size(img_size, stem), embedding_size, dropout)
    return Backbone(body, neck, name=name, stem=stem, in_chans=in_chans,
                    embedding_size=embedding_size, img_size=img_size)
