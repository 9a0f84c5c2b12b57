"""State and action normalisation: statistics from the training data, saved with the policy, applied
in training and inverted at inference -- by one module, so both paths cannot disagree.

Modes per feature, as LeRobot's ``NormalizationMode``:

=============  ======================================  ====================================
mode           normalise                               invert
=============  ======================================  ====================================
``mean_std``   ``(x - mean) / std``                    ``y * std + mean``
``min_max``    ``2 (x - min) / (max - min) - 1``       ``(y + 1) (max - min) / 2 + min``
``identity``   ``x``                                   ``y``
=============  ======================================  ====================================

A dimension whose spread (std, or max - min) is below ``EPS`` is constant in the training data; it
is divided by 1 instead (centred, not blown up): LeRobot adds 1e-8 to the denominator, which turns a
constant joint that moves at test time into values of 1e8.

The official Being-H0 release computes such statistics and never applies them; here the policy's
:class:`Normalizer` is the only way in and out of the network (``beingh0.policy.model``), and the
statistics travel in the policy's JSON config.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..core.errors import UserValueError

__all__ = ["EPS", "MODES", "Normalizer", "feature_stats"]

MODES = ("mean_std", "min_max", "identity")
#: Spreads below this count as constant (divided by 1).
EPS = 1e-6


def feature_stats(table) -> dict:
    """``{"mean", "std", "min", "max", "count"}`` (lists of floats, float64 maths) of an (N, D) table."""
    x = np.asarray(table, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise UserValueError(f"statistics need an (N, D) table with N > 0, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        bad = np.where(~np.isfinite(x).all(0))[0].tolist()
        raise UserValueError(f"the data holds NaN or inf in dimensions {bad[:8]}; clean the dataset first")
    return {"mean": x.mean(0).tolist(), "std": x.std(0).tolist(), "min": x.min(0).tolist(),
            "max": x.max(0).tolist(), "count": int(x.shape[0])}


def _affine(stats: dict, mode: str, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(offset, scale) with y = (x - offset) / scale."""
    if mode not in MODES:
        raise UserValueError(f"normalisation mode {mode!r} is not one of {', '.join(MODES)}")
    if mode == "identity":
        return np.zeros(dim), np.ones(dim)
    need = ("mean", "std") if mode == "mean_std" else ("min", "max")
    for k in need:
        if k not in stats or len(stats[k]) != dim:
            raise UserValueError(f"normalisation {mode} needs {k!r} statistics of {dim} dimensions, got "
                                 f"{None if k not in stats else len(stats[k])}")
    if mode == "mean_std":
        off, scale = np.asarray(stats["mean"], np.float64), np.asarray(stats["std"], np.float64)
    else:
        lo, hi = np.asarray(stats["min"], np.float64), np.asarray(stats["max"], np.float64)
        off, scale = (hi + lo) / 2, (hi - lo) / 2
    scale = np.where(scale < EPS, 1.0, scale)
    return off, scale


class Normalizer(nn.Module):
    """Normalise / invert named features (``observation.state``, ``action``) with stored statistics.

    ``features``: ``{name: {"mode": ..., "stats": feature_stats(...)}}``; the (offset, scale) of each
    are float32 buffers (so they move with the model and are exported with it), the raw statistics
    stay in :meth:`to_dict` for the JSON config.
    """

    def __init__(self, features: dict):
        super().__init__()
        self.features = {}
        for name, spec in features.items():
            mode, stats = spec.get("mode"), spec.get("stats") or {}
            dim = int(spec.get("dim") or len(stats.get("mean") or stats.get("min") or []))
            if dim <= 0:
                raise UserValueError(f"normaliser of {name!r}: no statistics and no dim given")
            off, scale = _affine(stats, mode, dim)
            self.features[name] = {"mode": mode, "dim": dim, "stats": stats}
            key = name.replace(".", "_")
            self.register_buffer(f"{key}_offset", torch.tensor(off, dtype=torch.float32))
            self.register_buffer(f"{key}_scale", torch.tensor(scale, dtype=torch.float32))

    def to_dict(self) -> dict:
        return {k: dict(v) for k, v in self.features.items()}

    def _buffers_of(self, name: str):
        if name not in self.features:
            raise KeyError(f"no normalisation statistics for {name!r}; known: {sorted(self.features)}")
        key = name.replace(".", "_")
        return getattr(self, f"{key}_offset"), getattr(self, f"{key}_scale")

    def normalize(self, name: str, x: torch.Tensor) -> torch.Tensor:
        off, scale = self._buffers_of(name)
        return (x - off.to(x.dtype)) / scale.to(x.dtype)

    def unnormalize(self, name: str, y: torch.Tensor) -> torch.Tensor:
        off, scale = self._buffers_of(name)
        return y * scale.to(y.dtype) + off.to(y.dtype)
