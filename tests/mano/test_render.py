"""Tests of ``beingh0.mano.render``: PNGs are written, non-empty, and bad shapes are refused."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from beingh0.mano.model import ManoModel
from beingh0.mano.render import render_fit_comparison, render_hand

BACKEND = None if importlib.util.find_spec("beingh0._C") is not None else "reference"


@pytest.fixture(scope="module")
def posed():
    m = ManoModel.embedded("right")
    hp = torch.zeros(2, 45, dtype=torch.float64)
    hp[1, 2::3] = 0.6                                   # curl every joint a little
    go = torch.tensor([[0.0, 0.0, 0.0], [0.3, 1.0, -0.4]], dtype=torch.float64)
    with torch.no_grad():
        out = m(None, go, hp, torch.zeros(2, 3, dtype=torch.float64), backend=BACKEND)
    return out.vertices.numpy(), m.faces.numpy(), out.keypoints.numpy()


def test_render_fit_comparison_writes_png(posed, tmp_path):
    v, f, kp = posed
    noisy = kp + np.random.default_rng(0).normal(0, 0.003, kp.shape)
    noisy[1, 4] = np.nan                                # missing input keypoints are skipped
    p = render_fit_comparison(v, f, kp, noisy, tmp_path / "cmp.png", titles=["flat", "curled"], verts_ref=v)
    assert p.is_file() and p.stat().st_size > 10_000
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_render_hand_writes_png(posed, tmp_path):
    v, f, kp = posed
    p = render_hand(torch.as_tensor(v[1]), f, tmp_path / "sub" / "hand.png", keypoints=kp[1], title="curled")
    assert p.is_file() and p.stat().st_size > 5_000


def test_render_rejects_mismatched_shapes(posed, tmp_path):
    v, f, kp = posed
    with pytest.raises(ValueError, match="kp_fit"):
        render_fit_comparison(v, f, kp[:1], kp, tmp_path / "x.png")
    with pytest.raises(ValueError, match="titles"):
        render_fit_comparison(v, f, kp, kp, tmp_path / "x.png", titles=["one"])
