"""Fit MANO parameters to 3D hand keypoints (paper section 5.2.1, "hand pose standardization").

When a data set only gives 3D joint positions, Being-H0 derives MANO parameters "via gradient-based
optimization", after "detect[ing] and correct[ing] left-right hand mismatches by identifying pose
discontinuities" and "temporal interpolation to fill minor gaps", with "joint angle constraints and
temporal smoothness regularization". This module is that pipeline:

1. clean the input: NaN keypoints are invalid; mirrored (wrong-chirality) frames are found from
   the palm geometry (``detect_chirality_flips``) and, by default, marked invalid; short gaps
   (<= ``max_gap`` frames) are filled by linear interpolation (``interpolate_gaps``), longer ones
   are left out of the data term and bridged by the smoothness terms alone;
2. initialise ``global_orient`` per frame by Kabsch between the model's rest palm (wrist + four
   finger MCPs) and the data, ``trans`` from the same alignment (``trans`` is the wrist:
   ``trans_mode="wrist"``), betas 0;
3. stage 1: ``global_orient``, ``trans`` and the shared betas on the palm points;
4. stage 2: everything (``global_orient`` (T,3), ``hand_pose`` (T,45), ``trans`` (T,3), betas (10))
   on all 21 keypoints + temporal smoothness + soft joint-angle limits + small priors;
5. pose discontinuities (short runs whose wrist rotation or finger pose jumps against both
   neighbours) are re-initialised from their neighbours and the whole sequence is refined again.

Optimizer: L-BFGS with a strong-Wolfe line search (default). On the 621-frame MediaPipe sequence
(cpp backend, 2-core CPU) 300 L-BFGS iterations reach 4.33 mm mean error in 3.8 s, Adam reaches
4.51 mm after 1500 iterations in 10.2 s (lr 0.01 or 0.03 alike). Adam is kept as an option because
it never needs a line search. ``trans`` is optimised in centimetres (see ``_TRANS_UNIT``).
Units: metres and radians inside, errors reported in millimetres.
"""
from __future__ import annotations

import json
import math
import time
import zipfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch

from ..core.config import validate_config
from ..core.constants import NUM_KEYPOINTS
from ..core.errors import UserFileError, UserValueError
from ..core.rotations import matrix_to_axis_angle, rodrigues
from .clean import (PALM, _as_numpy_keypoints, _as_valid, check_metres, chirality_scores,  # noqa: F401
                    detect_chirality_flips, detect_swaps, interpolate_gaps, mirror_about_palm)
from ..ops.backend import Backend
from .io import read_npy_header

_MCP = ((-0.25, 0.25), (-0.35, 0.35), (-0.35, 1.9))
_PIP = ((-0.25, 0.25), (-0.15, 0.15), (0.0, 2.0))
_DIP = ((-0.25, 0.25), (-0.15, 0.15), (0.0, 1.5))
_THUMB1 = ((-0.9, 0.9), (-0.9, 0.9), (-0.9, 1.2))
_THUMB23 = ((-0.6, 0.6), (-0.6, 0.6), (-0.6, 1.6))
#: Approximate joint-angle ranges (rad) of the RIGHT hand, per hand_pose joint (MANO order: index,
#: middle, pinky, ring, thumb; 3 joints each) and axis-angle component (x twist along the bone,
#: y abduction, z flexion), in the rest-pose (MANO / embedded model) frame. They are box limits
#: on axis-angle components, i.e. approximate for combined rotations; the thumb is left loose
#: because its rest frame is not aligned with its bones. Left hands mirror them (y, z negated).
JOINT_LIMITS_RIGHT = np.array([_MCP, _PIP, _DIP] * 4 + [_THUMB1, _THUMB23, _THUMB23], dtype=np.float64)


def joint_limits(side: str) -> np.ndarray:
    """(15, 3, 2) [low, high] axis-angle component ranges for ``side`` ('right' or 'left')."""
    if side not in ("right", "left"):
        raise ValueError(f"side must be 'right' or 'left', got {side!r}")
    lim = JOINT_LIMITS_RIGHT.copy()
    if side == "left":  # mirror x -> -x: axis-angle (x, y, z) -> (x, -y, -z), so [lo, hi] -> [-hi, -lo]
        lim[:, 1:] = -lim[:, 1:, ::-1]
    return lim


# ------------------------------------------------------------------------------------------------
# configuration


@dataclass
class FitConfig:
    """Settings of ``fit_keypoints``. Loss weights are relative to the data term (mean squared
    keypoint error in mm^2); smoothness terms are means over frames of squared finite differences
    (per frame, at the data's frame rate)."""

    stage1_iters: int = field(default=30, metadata={"ge": 0})
    """Iterations of stage 1 (rigid palm fit of global_orient, trans and betas)."""
    stage2_iters: int = field(default=300, metadata={"ge": 1})
    """Iterations of stage 2 (all parameters, all keypoints)."""
    refine_iters: int = field(default=40, metadata={"ge": 0})
    """Iterations of the refinement after pose discontinuities were re-initialised (0: none)."""
    optimizer: str = field(default="lbfgs", metadata={"choices": ("lbfgs", "adam")})
    """'lbfgs' (strong-Wolfe line search; lower error in a third of Adam's time here) or 'adam'."""
    lr: float | None = field(default=None, metadata={"gt": 0})
    """Step size; None: 1.0 for L-BFGS, 0.01 for Adam."""
    w_keypoints: float = field(default=1.0, metadata={"gt": 0})
    """Data term: mean squared 3D keypoint error over valid keypoints, in mm^2."""
    w_vel_pose: float = field(default=10.0, metadata={"ge": 0})
    """Velocity of the finger pose (rad^2, mean over the 15 joints) and wrist rotation (Frobenius^2)."""
    w_acc_pose: float = field(default=300.0, metadata={"ge": 0})
    """Acceleration (second difference) of the same quantities."""
    w_vel_trans: float = field(default=0.01, metadata={"ge": 0})
    """Velocity of trans (mm^2 per frame^2)."""
    w_acc_trans: float = field(default=0.5, metadata={"ge": 0})
    """Acceleration of trans (mm^2 per frame^4)."""
    w_orient_scale: float = field(default=4.0, metadata={"ge": 0})
    """Multiplies the wrist-rotation smoothness relative to the fingers' (the wrist moves the whole hand)."""
    w_limits: float = field(default=1.0e4, metadata={"ge": 0})
    """Soft joint-angle limits: squared hinge (rad^2) outside ``joint_limits(side)``, summed over axes."""
    w_pose_prior: float = field(default=2.0, metadata={"ge": 0})
    """Pull of hand_pose towards the flat hand (rad^2, mean over joints)."""
    w_betas_prior: float = field(default=0.1, metadata={"ge": 0})
    """Pull of betas towards the mean shape (sum of squares). Weak: at 1.0 the shrunken hand made the
    fit shift the wrist by ~3 mm on noise-free synthetic data."""
    fit_betas: bool = True
    """Fit one betas vector shared by the whole sequence (False: keep betas at 0)."""
    backend: str | None = field(default=None, metadata={"choices": tuple(b.value for b in Backend)})
    """Kernel backend for ``mano_joints`` (None: ``$BEINGH0_BACKEND`` or auto)."""
    device: str = "cpu"
    """Torch device the optimisation runs on."""
    dtype: str = field(default="float32", metadata={"choices": ("float32", "float64")})
    """'float32' (fast) or 'float64'."""
    max_gap: int = field(default=5, metadata={"ge": 0})
    """Gaps of at most this many frames are linearly interpolated; longer ones stay out of the data term."""
    chirality: str = field(default="invalidate", metadata={"choices": ("invalidate", "repair", "off")})
    """Mirrored frames: 'invalidate' (drop them, then interpolate like gaps), 'repair' (mirror them
    back about their palm plane) or 'off'."""
    chirality_threshold: float = field(default=0.05, metadata={"gt": 0})
    """A frame is mirrored when its palm-side score (see ``chirality_scores``) is below minus this."""
    jump_orient: float = field(default=0.6, metadata={"gt": 0})
    """Wrist-rotation jump (rad, between consecutive frames) that marks a pose discontinuity."""
    jump_pose: float = field(default=0.8, metadata={"gt": 0})
    """Finger-joint rotation jump (rad, largest joint) that marks a pose discontinuity."""
    max_jump_run: int = field(default=5, metadata={"ge": 0})
    """Longest run of frames between two jumps that is treated as a discontinuity and re-initialised."""
    progress: bool = False
    """Show a tqdm progress bar."""
    num_threads: int | None = field(default=1, metadata={"ge": 1})
    """torch intra-op threads during the fit (restored afterwards; None: leave torch's setting). The
    fit's tensors are small (T x 21 x 3), so threads mostly spin: on the 2-core CI machine under load
    the 621-frame fit took 40 s with 2 threads and 3.3 s with 1 (cpp backend; reference: 22 s vs 7 s)."""

    def __post_init__(self):
        validate_config(self)
        try:  # what field metadata cannot say: a torch device string
            torch.device(self.device)
        except (RuntimeError, TypeError):
            raise UserValueError(f"invalid FitConfig: device={self.device!r} is not a torch device; "
                                 "pass e.g. 'cpu' or 'cuda'") from None

    @property
    def step_size(self) -> float:
        return self.lr if self.lr is not None else (1.0 if self.optimizer == "lbfgs" else 0.01)


# ------------------------------------------------------------------------------------------------
# result


@dataclass
class FitResult:
    """Fitted parameters (numpy, float64) and diagnostics. Errors in mm; ``per_joint_error_mm`` is
    against the cleaned input (NaN where the original input was missing or dropped)."""

    betas: np.ndarray                 # (10,)
    global_orient: np.ndarray         # (T, 3)
    hand_pose: np.ndarray             # (T, 45)
    trans: np.ndarray                 # (T, 3): wrist position
    keypoints_fit: np.ndarray         # (T, 21, 3)
    per_joint_error_mm: np.ndarray    # (T, 21)
    mean_error_mm: float
    chirality_flips: np.ndarray       # (T,) bool: frames found mirrored (dropped or repaired)
    interpolated: np.ndarray          # (T, 21) bool: keypoints filled by interpolation
    discontinuities: np.ndarray       # (T,) bool: frames re-initialised after a pose jump
    discontinuities_left: np.ndarray  # (T,) bool: jumps still present after the refinement
    time_s: float
    loss_history: np.ndarray          # (n, 2): stage id (1, 2, 3 = refine), loss
    side: str = "right"
    config: str = "{}"                # FitConfig as JSON

    def save(self, path) -> Path:
        """Write an ``.npz`` (plain arrays and strings only, loadable without pickle)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            out[f.name] = np.asarray(v) if not isinstance(v, str) else np.array(v, dtype=np.str_)
        np.savez(path, **out)
        return path if path.suffix == ".npz" else path.with_name(path.name + ".npz")

    @classmethod
    def load(cls, path) -> "FitResult":
        with np.load(Path(path), allow_pickle=False) as z:
            kw = {}
            for f in fields(cls):
                if f.name not in z.files:
                    raise ValueError(f"{path} has no field {f.name!r}; was it written by FitResult.save?")
                v = z[f.name]
                kw[f.name] = (str(v) if f.name in ("side", "config") else
                              float(v) if f.name in ("mean_error_mm", "time_s") else v)
        return cls(**kw)

    @property
    def num_frames(self) -> int:
        return self.trans.shape[0]

    def summary(self) -> dict:
        e = self.per_joint_error_mm[np.isfinite(self.per_joint_error_mm)]
        return {
            "frames": self.num_frames,
            "mean_mm": float(e.mean()) if e.size else float("nan"),
            "median_mm": float(np.median(e)) if e.size else float("nan"),
            "p90_mm": float(np.percentile(e, 90)) if e.size else float("nan"),
            "chirality_flips": int(self.chirality_flips.sum()),
            "discontinuities": int(self.discontinuities.sum()),
            "time_s": self.time_s,
        }




# ------------------------------------------------------------------------------------------------
# rotations (numpy, for the initialisation)


def _matrix_to_axis_angle(Rm: np.ndarray) -> np.ndarray:
    """(..., 3, 3) -> (..., 3) axis-angle via quaternions (stable at 0 and pi; ``core.rotations``)."""
    return matrix_to_axis_angle(torch.as_tensor(np.asarray(Rm, dtype=np.float64))).numpy()


def _unwrap_axis_angle(r: np.ndarray) -> np.ndarray:
    """Make a (T, 3) axis-angle sequence continuous: replace r by the equivalent r (1 - 2pi/|r|)
    (same rotation, the other way round) when that is closer to the previous frame."""
    r = r.copy()
    for t in range(1, len(r)):
        th = np.linalg.norm(r[t])
        if th < 1e-6:
            continue
        axis = r[t] / th
        cands = [r[t], axis * (th - 2 * np.pi), axis * (th + 2 * np.pi)]
        r[t] = min(cands, key=lambda c: np.linalg.norm(c - r[t - 1]))
    return r


def _geodesic(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Angle (rad) between rotation matrices a, b (..., 3, 3)."""
    tr = (a.transpose(-1, -2) @ b).diagonal(dim1=-2, dim2=-1).sum(-1)
    return torch.arccos(((tr - 1) / 2).clamp(-1, 1))


def _batched_kabsch(src: np.ndarray, dst: np.ndarray, w: np.ndarray):
    """src (P, 3), dst (T, P, 3), w (T, P) weights -> R (T, 3, 3), t (T, 3) with dst ~ R src + t."""
    ws = w / np.maximum(w.sum(1, keepdims=True), 1e-12)
    dst = np.nan_to_num(dst)
    cs = ws @ src                                        # (T, 3)
    cd = (ws[..., None] * dst).sum(1)
    H = np.einsum("tp,tpi,tpj->tij", ws, src[None] - cs[:, None], dst - cd[:, None])
    U, _, Vt = np.linalg.svd(H)
    d = np.sign(np.linalg.det(np.swapaxes(Vt, 1, 2) @ np.swapaxes(U, 1, 2)))
    D = np.zeros((len(w), 3, 3))
    D[:, 0, 0], D[:, 1, 1], D[:, 2, 2] = 1.0, 1.0, np.where(d == 0, 1.0, d)
    Rm = np.swapaxes(Vt, 1, 2) @ D @ np.swapaxes(U, 1, 2)
    return Rm, cd - np.einsum("tij,tj->ti", Rm, cs)


def _interp_rows(x: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Linearly interpolate the rows of x (T, D) where ok is False (nearest value beyond the ends)."""
    t = np.arange(len(x))
    return np.stack([np.interp(t, t[ok], x[ok, d]) for d in range(x.shape[1])], 1)


#: The optimiser sees trans in centimetres: in metres its curvature would be ~10^4 times the finger
#: angles' (a 1 rad finger rotation moves keypoints by ~3 cm), which stalls L-BFGS (measured: 26 mm
#: instead of < 1 mm after 150 iterations on a noise-free synthetic sequence).
_TRANS_UNIT = 0.01


class _Problem:
    """The sequence objective: data term + smoothness + joint limits + priors (see FitConfig)."""

    def __init__(self, model, target: np.ndarray, mask: np.ndarray, cfg: FitConfig):
        self.model, self.cfg = model, cfg
        self.dt = torch.float64 if cfg.dtype == "float64" else torch.float32
        self.dev = torch.device(cfg.device)
        self.target = torch.as_tensor(np.nan_to_num(target), dtype=self.dt, device=self.dev)
        self.mask = torch.as_tensor(mask, dtype=self.dt, device=self.dev)
        palm = np.zeros(NUM_KEYPOINTS, dtype=bool)
        palm[list(PALM)] = True
        self.mask_palm = self.mask * torch.as_tensor(palm, dtype=self.dt, device=self.dev)
        lim = torch.as_tensor(joint_limits(model.side), dtype=self.dt, device=self.dev)
        self.lo, self.hi = lim[..., 0], lim[..., 1]

    def keypoints(self, p: dict) -> torch.Tensor:
        return self.model.keypoints(p["betas"], p["global_orient"], p["hand_pose"], p["trans"] * _TRANS_UNIT,
                                    backend=self.cfg.backend)

    @staticmethod
    def _diffs(x: torch.Tensor, w_vel: float, w_acc: float) -> torch.Tensor:
        """w_vel * mean |x_t+1 - x_t|^2 + w_acc * mean |x_t+1 - 2 x_t + x_t-1|^2 (x (T, ..., D))."""
        out = x.new_zeros(())
        if x.shape[0] >= 2 and w_vel:
            out = out + w_vel * (x[1:] - x[:-1]).pow(2).sum(-1).mean()
        if x.shape[0] >= 3 and w_acc:
            out = out + w_acc * (x[2:] - 2 * x[1:-1] + x[:-2]).pow(2).sum(-1).mean()
        return out

    def loss(self, p: dict, stage: int) -> torch.Tensor:
        c = self.cfg
        kp = self.keypoints(p)
        mask = self.mask_palm if stage == 1 else self.mask
        d2 = ((kp - self.target) * 1000.0).pow(2).sum(-1)
        loss = c.w_keypoints * (d2 * mask).sum() / mask.sum().clamp_min(1.0)
        T = kp.shape[0]
        R = rodrigues(p["global_orient"]).reshape(T, 9)
        s = c.w_orient_scale
        loss = loss + self._diffs(R, s * c.w_vel_pose, s * c.w_acc_pose)
        loss = loss + self._diffs(p["trans"] * (_TRANS_UNIT * 1000.0), c.w_vel_trans, c.w_acc_trans)
        if stage != 1:
            hp = p["hand_pose"].reshape(T, 15, 3)
            loss = loss + self._diffs(hp, c.w_vel_pose, c.w_acc_pose)
            viol = torch.relu(self.lo - hp) + torch.relu(hp - self.hi)
            loss = loss + c.w_limits * viol.pow(2).sum(-1).mean() + c.w_pose_prior * hp.pow(2).sum(-1).mean()
        if c.fit_betas:
            loss = loss + c.w_betas_prior * p["betas"].pow(2).sum()
        return loss


def _optimise(problem: _Problem, params: dict, names: list, iters: int, stage: int, history: list, bar) -> None:
    """Run ``iters`` iterations of the configured optimizer on ``params[names]`` (in place)."""
    if iters == 0:
        return
    c = problem.cfg
    for k, v in params.items():
        v.requires_grad_(k in names)
    ps = [params[k] for k in names]
    backup = [x.detach().clone() for x in ps]

    def closure():
        opt.zero_grad(set_to_none=True)
        loss = problem.loss(params, stage)
        loss.backward()
        history.append((stage, float(loss.detach())))
        if bar is not None and bar.n < bar.total:
            bar.update(1)
        return loss

    if c.optimizer == "lbfgs":
        opt = torch.optim.LBFGS(ps, lr=c.step_size, max_iter=iters, history_size=20, line_search_fn="strong_wolfe",
                                tolerance_grad=1e-10, tolerance_change=1e-12)
        opt.step(closure)
    else:
        opt = torch.optim.Adam(ps, lr=c.step_size)
        for _ in range(iters):
            opt.step(closure)
    with torch.no_grad():
        for x, b in zip(ps, backup):  # a diverged step (NaN) falls back to the stage's start
            if not torch.isfinite(x).all():
                x.copy_(b)
    for v in params.values():
        v.requires_grad_(False)


def _pose_jumps(go: np.ndarray, hp: np.ndarray, cfg: FitConfig) -> np.ndarray:
    """(T,) bool: frames inside short runs (<= max_jump_run) bounded by a jump on both sides."""
    T = len(go)
    flagged = np.zeros(T, dtype=bool)
    if T < 3:
        return flagged
    R = rodrigues(torch.as_tensor(go))
    d_or = _geodesic(R[1:], R[:-1]).numpy()
    d_hp = np.linalg.norm((hp[1:] - hp[:-1]).reshape(T - 1, 15, 3), axis=-1).max(-1)
    edges = np.flatnonzero((d_or > cfg.jump_orient) | (d_hp > cfg.jump_pose))  # jump between e and e+1
    for a, b in zip(edges[:-1], edges[1:]):
        if b - a <= cfg.max_jump_run:
            flagged[a + 1:b + 1] = True
    return flagged


def fit_keypoints(model, keypoints, valid=None, config: FitConfig | None = None) -> FitResult:
    """Fit MANO parameters to a keypoint sequence (see the module docstring for the steps).

    Args:
        model: a ``ManoModel`` (its side and ``trans_mode`` are used; "wrist" mode is expected).
        keypoints: (T, 21, 3) numpy or torch, metres, Being-H0 keypoint order, in the model's side.
        valid: None, (T,) or (T, 21) bool; NaN keypoints are invalid in any case.
        config: ``FitConfig``.

    Returns:
        ``FitResult`` (numpy, float64).
    """
    cfg = config if config is not None else FitConfig()
    if not isinstance(cfg, FitConfig):
        raise TypeError(f"config must be a FitConfig, got {type(cfg).__name__}")
    threads = torch.get_num_threads()
    if cfg.num_threads is not None:
        torch.set_num_threads(cfg.num_threads)
    try:
        return _fit(model, keypoints, valid, cfg)
    finally:
        torch.set_num_threads(threads)


def _fit(model, keypoints, valid, cfg: FitConfig) -> FitResult:
    t0 = time.perf_counter()
    kp = _as_numpy_keypoints(keypoints)
    if kp.shape[0] == 0:
        raise UserValueError("keypoints has no frames (T = 0); pass at least one frame")
    observed = _as_valid(valid, kp)
    kp = np.where(observed[..., None], kp, np.nan)
    T = kp.shape[0]
    check_metres(kp, observed)

    # 1. chirality (before interpolating, so mirrored frames do not leak into their neighbours)
    flips = np.zeros(T, dtype=bool)
    if cfg.chirality != "off":
        with np.errstate(invalid="ignore"):
            scores = chirality_scores(kp, model.side)
        flips = np.nan_to_num(scores, nan=0.0) < -cfg.chirality_threshold
        kept = np.nan_to_num(scores, nan=0.0) > cfg.chirality_threshold
        if flips.sum() > max(kept.sum(), 0.5 * np.isfinite(scores).sum()):  # mostly the other hand
            other = "left" if model.side == "right" else "right"
            raise UserValueError(
                f"the chirality check rejected {int(flips.sum())} of {T} frames as mirrored: the keypoints look like a "
                f"{other} hand but the model is a {model.side} hand; fit with side='{other}' (`beingh0 mano fit "
                f"--side {other}`, or a MANO_{other.upper()} model), or pass FitConfig(chirality='off') to fit them as they are")
        if cfg.chirality == "repair":
            kp[flips] = mirror_about_palm(kp[flips])
        else:
            observed = observed & ~flips[:, None]
            kp[flips] = np.nan
    # 2. gaps
    kp, mask = interpolate_gaps(kp, observed, cfg.max_gap)
    if not mask.any():
        why = (f" ({int(flips.sum())} frames were rejected as mirrored by the chirality check: is side='{model.side}' "
               "right?)" if flips.any() else "")
        raise UserValueError(f"no valid keypoint left to fit (all NaN/masked){why}; check the input and the valid mask")

    # 3. rigid initialisation from the rest palm
    with torch.no_grad():
        rest = model.keypoints(backend=cfg.backend)[0].double().cpu().numpy()
    w = mask[:, list(PALM)].astype(np.float64)
    ok = w.sum(1) >= 3
    if not ok.any():
        raise UserValueError("no frame has 3 valid palm keypoints (wrist, index/middle/ring/pinky MCP) to align the "
                             "hand; check the keypoint order (Being-H0/MediaPipe 21) and the valid mask")
    Rm, tr = _batched_kabsch(rest[list(PALM)] - rest[0], kp[:, list(PALM)], np.where(ok[:, None], w, 1.0))
    go = np.zeros((T, 3))
    go[ok] = _unwrap_axis_angle(_matrix_to_axis_angle(Rm[ok]))
    go, tr = _interp_rows(go, ok), _interp_rows(tr, ok)

    prob = _Problem(model, kp, mask, cfg)
    as_t = lambda x: torch.as_tensor(x, dtype=prob.dt, device=prob.dev).clone()
    params = {"global_orient": as_t(go), "hand_pose": as_t(np.zeros((T, 45))), "trans": as_t(tr / _TRANS_UNIT),
              "betas": as_t(np.zeros(model.shapedirs.shape[-1]))}
    history: list = []
    bar = None
    if cfg.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.stage1_iters + cfg.stage2_iters + cfg.refine_iters, desc="fit", unit="it")
    betas = ["betas"] if cfg.fit_betas else []
    # 4. stage 1 (palm, rigid + size), stage 2 (everything)
    _optimise(prob, params, ["global_orient", "trans"] + betas, cfg.stage1_iters, 1, history, bar)
    all_names = ["global_orient", "hand_pose", "trans"] + betas
    _optimise(prob, params, all_names, cfg.stage2_iters, 2, history, bar)
    # 5. pose discontinuities: re-initialise from the neighbours, refine
    np_p = lambda k: params[k].detach().double().cpu().numpy()
    jumps = _pose_jumps(np_p("global_orient"), np_p("hand_pose"), cfg)
    left = jumps
    if jumps.any() and cfg.refine_iters:
        good = ~jumps
        with torch.no_grad():
            for k in ("global_orient", "hand_pose", "trans"):
                x = np_p(k)
                if k == "global_orient":
                    x = _unwrap_axis_angle(x)
                params[k].copy_(as_t(_interp_rows(x, good)))
        _optimise(prob, params, all_names, cfg.refine_iters, 3, history, bar)
        left = _pose_jumps(np_p("global_orient"), np_p("hand_pose"), cfg)
    if bar is not None:  # L-BFGS may stop early on its tolerances: end the bar where it is
        bar.total = bar.n
        bar.close()

    with torch.no_grad():
        f64 = {k: v.detach().double().cpu() for k, v in params.items()}
        f64["trans"] = f64["trans"] * _TRANS_UNIT
        kp_fit = model.keypoints(f64["betas"], f64["global_orient"], f64["hand_pose"], f64["trans"],
                                 backend=cfg.backend).numpy()
    err_mask = observed & mask
    err = np.where(err_mask, np.linalg.norm(kp_fit - np.nan_to_num(kp), axis=-1) * 1000.0, np.nan)
    return FitResult(
        betas=f64["betas"].numpy(), global_orient=f64["global_orient"].numpy(), hand_pose=f64["hand_pose"].numpy(),
        trans=f64["trans"].numpy(), keypoints_fit=kp_fit, per_joint_error_mm=err,
        mean_error_mm=float(np.nanmean(err)) if err_mask.any() else float("nan"),
        chirality_flips=flips, interpolated=mask & ~observed, discontinuities=jumps, discontinuities_left=left,
        time_s=time.perf_counter() - t0, loss_history=np.asarray(history, dtype=np.float64).reshape(-1, 2),
        side=model.side, config=json.dumps(asdict(cfg)),
    )


def _select_frames(n: int, frames) -> np.ndarray:
    if frames is None:
        return np.arange(n)
    if isinstance(frames, int):
        if frames < 1:
            raise UserValueError(f"frames={frames} must be >= 1 (the number of leading frames to fit)")
        return np.arange(min(frames, n))
    if isinstance(frames, slice):
        return np.arange(n)[frames]
    idx = np.asarray(frames, dtype=np.int64)
    if idx.ndim != 1 or idx.size == 0 or idx.min() < -n or idx.max() >= n:
        raise UserValueError(f"frames must be an int, a slice or 1-D indices within [0, {n}), got {frames!r}")
    return idx


_KP_HINT = "pass a .npy of shape (T, 21, 3) in metres (numpy.save('kp.npy', keypoints))"


def load_keypoints_npy(path) -> np.ndarray:
    """A (T, 21, 3) (or (21, 3)) keypoint array from a ``.npy`` file, never unpickled, as float64.

    Every problem with the file (missing, a folder, an ``.npz`` archive, empty, truncated, not a
    ``.npy``, pickled objects, a non-numeric dtype, a wrong shape) is a one-line ``UserError`` naming
    the file and what to pass. The header is read first: the array's declared size must match the
    file's, so nothing larger than the file is allocated.
    """
    path = Path(path)
    if path.is_dir():
        raise UserFileError(f"keypoint file {path} is a folder; {_KP_HINT}")
    if not path.is_file():
        raise UserFileError(f"keypoint file {path} not found; {_KP_HINT}")
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as z:
                keys = [n[:-4] if n.endswith(".npy") else n for n in z.namelist()][:8]
        except zipfile.BadZipFile:
            keys = []
        raise UserValueError(f"{path} is a .npz archive (arrays: {', '.join(keys) or 'none'}); {_KP_HINT}, e.g. "
                             f"numpy.save('kp.npy', numpy.load('{path.name}')['{keys[0] if keys else 'KEY'}'])")
    try:
        shape, dtype, present = read_npy_header(path)
    except (ValueError, EOFError, OSError) as e:
        what = "is empty" if path.stat().st_size == 0 else f"is not a .npy file ({type(e).__name__}: {e})"
        raise UserValueError(f"{path} {what}; {_KP_HINT}") from None
    if dtype.hasobject:
        raise UserValueError(f"{path} holds pickled objects (dtype {dtype}); convert it to a plain float array with "
                             "numpy.save(path, numpy.asarray(data, dtype=float))")
    if dtype.kind not in "iuf":
        raise UserValueError(f"{path} has dtype {dtype}; expected float keypoints in metres; {_KP_HINT}")
    if len(shape) not in (2, 3) or tuple(shape[-2:]) != (NUM_KEYPOINTS, 3):
        raise UserValueError(f"keypoints in {path} have shape {shape}, expected (T, 21, 3) (Being-H0/MediaPipe "
                             "keypoint order, metres) or (21, 3) for one frame")
    need = math.prod(shape) * dtype.itemsize
    if present < need:
        raise UserValueError(f"{path} is truncated: its header declares shape {shape} ({need:,} bytes) but "
                             f"{present:,} bytes follow; write it again with numpy.save")
    try:
        kp = np.load(path, allow_pickle=False)
    except (ValueError, EOFError, OSError) as e:
        raise UserValueError(f"{path}: not a readable .npy ({type(e).__name__}: {e}); {_KP_HINT}") from None
    if kp.ndim == 2:
        kp = kp[None]
    return kp.astype(np.float64)


def _check_out_file(path, flag: str, suffix: str) -> None:
    p = Path(path)
    if p.is_dir():
        raise UserValueError(f"{flag} {p} is a folder; pass a file name ending in {suffix}")


def fit_file(keypoints_path, out_path, model=None, config: FitConfig | None = None, render_path=None, frames=None,
             side: str = "right", verbose: bool = True) -> FitResult:
    """``beingh0 mano fit KEYPOINTS.npy --out PARAMS.npz [--render PNG]``.

    Loads a (T, 21, 3) float ``.npy`` (metres, Being-H0/MediaPipe keypoint order; NaN = missing;
    never unpickled; see ``load_keypoints_npy``), fits it (``fit_keypoints``), writes the
    ``FitResult`` npz, optionally renders four frames (fitted mesh vs input), and prints the error
    table (mm). A user's mistake (file, shape, unit, side) is a ``UserError``.

    Args:
        frames: None (all), an int (the first n frames), a slice or frame indices.
        side: hand side of the embedded model used when ``model`` is None.
    """
    path = Path(keypoints_path)
    _check_out_file(out_path, "--out", ".npz")
    if render_path is not None:
        _check_out_file(render_path, "--render", ".png")
    kp = load_keypoints_npy(path)
    kp = kp[_select_frames(len(kp), frames)]
    if model is None:
        from .model import ManoModel

        model = ManoModel.embedded(side)
    res = fit_keypoints(model, kp, config=config)
    saved = res.save(out_path)
    if render_path is not None:
        from .render import render_fit_comparison

        with torch.no_grad():
            idx = np.linspace(0, res.num_frames - 1, min(4, res.num_frames)).round().astype(int)
            out = model(torch.as_tensor(res.betas), torch.as_tensor(res.global_orient[idx]),
                        torch.as_tensor(res.hand_pose[idx]), torch.as_tensor(res.trans[idx]), backend=config.backend if config else None)
        render_fit_comparison(out.vertices.numpy(), model.faces.numpy(), res.keypoints_fit[idx], kp[idx], render_path,
                              titles=[f"frame {i}" for i in idx])
    if verbose:
        s = res.summary()
        print(f"fitted {s['frames']} frames of {path.name} -> {saved}")
        print("  per-joint error (mm) | mean   | median | p90    | time (s)")
        print(f"  vs input keypoints   | {s['mean_mm']:6.2f} | {s['median_mm']:6.2f} | {s['p90_mm']:6.2f} | {s['time_s']:7.2f}")
        if s["chirality_flips"] or s["discontinuities"]:
            print(f"  mirrored frames: {s['chirality_flips']}, pose discontinuities re-initialised: {s['discontinuities']}")
    return res
