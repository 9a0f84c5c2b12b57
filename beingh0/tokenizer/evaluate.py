"""Reconstruction metrics of a tokenizer, in millimetres after decode + forward kinematics.

Motion is cut into 1-s windows, each expressed in the frame of its first frame (Being-H0's
inference setting; the loader's ``reference="first"``), left hands mirrored into the right-hand
convention, encoded to codes, decoded, and both the decoded and the original parameters
(rotation/translation dims only: the joint dims are a training target, not an output) go through
the embedded right hand's forward kinematics (21 keypoints, the track's betas). Held-out dataset
folders (:func:`evaluate_dataset`) and in-memory clips (:func:`evaluate_clips`) take the same path:

- MPJPE: mean keypoint distance (includes the wrist position error);
- PA-MPJPE: the same after a per-frame similarity Procrustes alignment (scale, rotation,
  translation) of the decoded keypoints onto the original: the articulation error;
- wrist: mean distance between decoded and original ``trans`` (the wrist joint);
- codebook utilisation (fraction of codes used) and perplexity per (part, group, layer).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..core.errors import UserValueError
from ..mano.model import hand_model
from ..motion import decode_features
from .data import MotionClip, clip_windows, dataset_windows, open_datasets
from .quantizer import code_stats

__all__ = ["ReconMetrics", "procrustes_align", "evaluate_windows", "evaluate_clips", "evaluate_dataset", "format_table",
           "real_clip", "REAL_KEYPOINTS"]

#: The real sequence of the test data (MediaPipe keypoints of a filmed right hand, 30 fps).
REAL_KEYPOINTS = Path("dex_retargeting_human_hand") / "human_joint_right.npy"


@dataclass
class ReconMetrics:
    name: str
    windows: int
    frames: int
    mpjpe_mm: float
    pa_mpjpe_mm: float
    wrist_mm: float
    utilisation: dict = field(default_factory=dict)   # part -> (G, L) array
    perplexity: dict = field(default_factory=dict)    # part -> (G, L) array

    def mean_utilisation(self) -> float:
        return float(np.mean([u.mean() for u in self.utilisation.values()])) if self.utilisation else float("nan")

    def mean_perplexity(self) -> float:
        return float(np.mean([p.mean() for p in self.perplexity.values()])) if self.perplexity else float("nan")

    def summary(self) -> dict:
        return {"name": self.name, "windows": self.windows, "frames": self.frames, "mpjpe_mm": self.mpjpe_mm,
                "pa_mpjpe_mm": self.pa_mpjpe_mm, "wrist_mm": self.wrist_mm,
                "utilisation": self.mean_utilisation(), "perplexity": self.mean_perplexity()}


def procrustes_align(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Similarity-align pred (N, J, 3) onto gt (N, J, 3) per frame (Umeyama, proper rotations)."""
    mp, mg = pred.mean(1, keepdim=True), gt.mean(1, keepdim=True)
    p, g = pred - mp, gt - mg
    cov = p.transpose(1, 2) @ g                                      # (N, 3, 3)
    U, S, Vh = torch.linalg.svd(cov)
    d = torch.sign(torch.linalg.det(Vh.transpose(1, 2) @ U.transpose(1, 2)))
    D = torch.diag_embed(torch.stack([torch.ones_like(d), torch.ones_like(d), d], -1))
    R = Vh.transpose(1, 2) @ D @ U.transpose(1, 2)                    # rotation taking p to g
    scale = (S * torch.diagonal(D, dim1=1, dim2=2)).sum(-1) / (p ** 2).sum((1, 2)).clamp_min(1e-12)
    return scale[:, None, None] * p @ R.transpose(1, 2) + mg


def _keypoints(params: dict, betas: torch.Tensor) -> torch.Tensor:
    return hand_model("right").keypoints(betas.double(), params["global_orient"].double(),
                                         params["hand_pose"].double(), params["trans"].double())


@torch.no_grad()
def evaluate_windows(tok, batches, name: str = "windows", batch_windows: int = 512) -> ReconMetrics:
    """Metrics over window batches (features (B, 16, D) in their reference frames, mask (B, 16),
    betas (B, 10)), pooled over all valid frames."""
    was_training = tok.training
    tok.eval()
    spec, K, G, L = tok.spec, tok.cfg.codes, tok.cfg.groups, tok.cfg.layers
    err, pa, wr, frames, n = 0.0, 0.0, 0.0, 0, 0
    counts = {p: torch.zeros(G, L, K, dtype=torch.int64) for p in tok.cfg.parts}
    for feats, mask, betas in batches:
        for i in range(0, feats.shape[0], batch_windows):
            x, m, b = feats[i:i + batch_windows].double(), mask[i:i + batch_windows].bool(), betas[i:i + batch_windows]
            n += x.shape[0]
            codes = tok.encode_windows((tok.normalize(x) * m[..., None]).float())
            for pi, part in enumerate(tok.cfg.parts):
                c = codes[:, pi].permute(1, 3, 0, 2).reshape(G, L, -1).cpu()   # (G, L, windows x steps)
                counts[part].scatter_add_(2, c, torch.ones_like(c))
            y = tok.denormalize(tok.decode_windows(codes).double().cpu())
            rec, gt = decode_features(y[m], spec), decode_features(x[m], spec)
            bb = b.double()[:, None].expand(-1, m.shape[1], -1)[m]
            kp_r, kp_g = _keypoints(rec, bb), _keypoints(gt, bb)
            err += float((kp_r - kp_g).norm(dim=-1).mean(-1).sum())
            pa += float((procrustes_align(kp_r, kp_g) - kp_g).norm(dim=-1).mean(-1).sum())
            wr += float((rec["trans"] - gt["trans"]).norm(dim=-1).sum())
            frames += int(m.sum())
    tok.train(was_training)
    if frames == 0:
        raise UserValueError(f"evaluation set {name!r} has no frames; pass at least one clip or window")
    util, perp = {}, {}
    for part, c in counts.items():
        u, p = code_stats(c)
        util[part], perp[part] = u.numpy(), p.numpy()
    return ReconMetrics(name, n, frames, 1000 * err / frames, 1000 * pa / frames, 1000 * wr / frames, util, perp)


def evaluate_clips(tok, clips, name: str = "clips", batch_windows: int = 512) -> ReconMetrics:
    """Metrics over in-memory ``MotionClip`` s (windows as :func:`beingh0.tokenizer.data.clip_windows`)."""
    return evaluate_windows(tok, (clip_windows(c, tok.spec) for c in clips), name, batch_windows)


def evaluate_dataset(tok, folders, name: str = "held-out", limit: int | None = None) -> ReconMetrics:
    """Metrics over the motion windows of dataset folder(s) (the first ``limit``), read by the data
    loader with each window in the frame of its first frame."""
    ds = folders if hasattr(folders, "__getitems__") else open_datasets(folders, tok.spec, reference="first")
    return evaluate_windows(tok, dataset_windows(ds, limit=limit), name)


def format_table(rows: list) -> str:
    """Rows of ``ReconMetrics`` -> a printable table (errors in mm)."""
    head = (f"{'set':<24} {'windows':>7} {'frames':>7} {'MPJPE (mm)':>11} {'PA-MPJPE (mm)':>14} {'wrist (mm)':>11} "
            f"{'code use (%)':>13} {'perplexity':>11}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r.name:<24} {r.windows:>7} {r.frames:>7} {r.mpjpe_mm:>11.2f} {r.pa_mpjpe_mm:>14.2f} "
                     f"{r.wrist_mm:>11.2f} {100 * r.mean_utilisation():>13.1f} {r.mean_perplexity():>11.1f}")
    return "\n".join(lines)


def format_usage(metrics: ReconMetrics) -> str:
    """Per-layer utilisation (%) and perplexity, one line per (part, group)."""
    lines = [f"codebook usage on {metrics.name!r} per layer (utilisation % / perplexity):"]
    for part, u in metrics.utilisation.items():
        p = metrics.perplexity[part]
        for g in range(u.shape[0]):
            cells = " ".join(f"{100 * u[g, l]:5.1f}/{p[g, l]:<6.1f}" for l in range(u.shape[1]))
            lines.append(f"  {part:<6} g{g}: {cells}")
    return "\n".join(lines)


def real_clip(data_dir, frames: int | None = None, verbose: bool = True) -> MotionClip | None:
    """The real right-hand sequence (``REAL_KEYPOINTS`` under ``data_dir``, 30 fps) fitted to MANO
    with ``beingh0.mano.fit.fit_keypoints`` (~3-4 s); None with a message when it is absent.

    The keypoints come in a wrist-aligned frame (dex-retargeting's output), so the sequence
    measures finger articulation; its wrist barely moves.
    """
    from ..mano.fit import FitConfig, fit_keypoints

    path = Path(data_dir) / REAL_KEYPOINTS
    if not path.is_file():
        if verbose:
            print(f"real sequence skipped: {path} not found (it sits in ../shared/data beside a developer checkout)")
        return None
    kp = np.load(path, allow_pickle=False)
    if frames is not None:
        kp = kp[:frames]
    res = fit_keypoints(hand_model("right"), kp, config=FitConfig())
    if verbose:
        print(f"real sequence: fitted {res.num_frames} frames of {path.name} to MANO, mean keypoint error "
              f"{res.mean_error_mm:.2f} mm, {res.time_s:.1f} s")
    return MotionClip(res.global_orient, res.hand_pose, res.betas, res.trans, fps=30.0, side="right",
                      name="real: dex-retargeting")
