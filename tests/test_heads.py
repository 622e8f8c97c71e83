"""Margin heads: shapes, gradients, the margin's effect and numerical safety at boundary cosines."""

from __future__ import annotations

import math

import pytest
import torch

from facerec.errors import ConfigError
from facerec.recognition.heads import MARGIN_TYPES, MarginHead


@pytest.mark.parametrize("margin_type", MARGIN_TYPES)
def test_logits_shape_dtype_and_gradients(margin_type: str) -> None:
    torch.manual_seed(0)
    head = MarginHead(16, 5, margin_type=margin_type)
    emb = torch.randn(4, 16, requires_grad=True)
    labels = torch.tensor([0, 1, 2, 4])
    logits = head(emb, labels)
    assert logits.shape == (4, 5) and logits.dtype == torch.float32
    torch.nn.functional.cross_entropy(logits, labels).backward()
    for grad in (emb.grad, head.weight.grad):
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


@pytest.mark.parametrize("margin_type", MARGIN_TYPES)
def test_margin_lowers_only_the_target_logit(margin_type: str) -> None:
    torch.manual_seed(1)
    head = MarginHead(8, 3, margin_type=margin_type)
    emb = torch.randn(6, 8)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    cos = head.cosine(emb)
    logits = head.margin_logits(cos, labels)
    target = torch.nn.functional.one_hot(labels, 3).bool()
    assert torch.all(logits[target] < cos[target] * head.s)
    assert torch.allclose(logits[~target], cos[~target] * head.s)


def test_arcface_is_cos_theta_plus_m_and_continuous_past_pi_minus_m() -> None:
    head = MarginHead(2, 2, margin_type="arcface", s=1.0, m=0.5)
    thetas = torch.linspace(0.0, math.pi, 2001)
    out = head.target_logit(torch.cos(thetas))
    inside = (thetas > 0.01) & (thetas + 0.5 < math.pi - 1e-3)   # cosines are clamped to 1 - 1e-6
    assert torch.allclose(out[inside], torch.cos(thetas[inside] + 0.5), atol=1e-5)
    # Monotone decreasing in theta everywhere: no reward for a worse angle, also past pi - m.
    assert torch.all(out[1:] <= out[:-1] + 1e-6)
    past = thetas > math.pi - 0.5 + 1e-3
    assert torch.allclose(out[past], torch.cos(thetas[past]) - 0.5 * math.sin(0.5), atol=1e-5)
    # The only step is at the switch, downward, of cos m + m sin m - 1.
    step = (out[1:] - out[:-1]).min()
    assert step == pytest.approx(-(math.cos(0.5) + 0.5 * math.sin(0.5) - 1.0), abs=5e-3)


@pytest.mark.parametrize("margin_type", MARGIN_TYPES)
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_no_nan_at_boundary_cosines(margin_type: str, sign: float) -> None:
    head = MarginHead(4, 3, margin_type=margin_type)
    with torch.no_grad():
        head.weight.copy_(torch.eye(3, 4))
    emb = (sign * torch.eye(3, 4)).requires_grad_(True)   # cos exactly +-1 with its own class centre
    labels = torch.arange(3)
    logits = head(emb, labels)
    torch.nn.functional.cross_entropy(logits, labels).backward()
    assert torch.isfinite(logits).all()
    assert torch.isfinite(emb.grad).all() and torch.isfinite(head.weight.grad).all()


def test_head_runs_in_float32_under_autocast() -> None:
    head = MarginHead(8, 4)
    emb = torch.randn(3, 8).to(torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = head(emb, torch.tensor([0, 1, 3]))
    assert logits.dtype == torch.float32


def test_bad_options_are_refused() -> None:
    with pytest.raises(ConfigError, match="arcface"):
        MarginHead(8, 4, margin_type="sphereface")
    with pytest.raises(ConfigError, match="2 classes"):
        MarginHead(8, 1)
    with pytest.raises(ConfigError, match="labels"):
        MarginHead(8, 4)(torch.randn(3, 8), torch.tensor([0, 1]))
