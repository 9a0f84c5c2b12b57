"""``AlignTransform``: the data loader's transform hook for weak-perspective alignment and balancing.

Input sample (a dict; keys not listed are passed through unchanged):

=================  ===========================================================================
``frames``         uint8 (T, H, W, 3) or (H, W, 3), numpy or torch, RGB, the images as recorded.
``intrinsics``     ``Intrinsics``, or fx, fy, cx, cy (4,), or a 3x3 K, in pixels of ``frames``.
``distortion``     optional OpenCV coefficients (radtan k1, k2, p1, p2[, k3] or fisheye k1..k4).
``distortion_model``  optional ``"radtan"`` (default) or ``"fisheye"``.
``mano``           optional ``{"right": {...}, "left": {...}}``, per hand ``global_orient`` (T, 3),
                   ``hand_pose`` (T, 45 or PCA), ``betas`` (10,) or (T, 10), ``trans`` (T, 3): the
                   wrist joint in the camera frame (OpenCV, metres; Being-H0's convention).
``keypoints_3d``   optional ``{"right": (T, 21, 3), ...}`` camera frame, metres (keypoint 0 is the wrist).
``keypoints_2d``   optional ``{"right": (T, 21, 2), ...}`` pixels of ``frames`` (distorted, as seen).
``source``         optional label of the data source (for ``BalanceSampler``).
=================  ===========================================================================

Output: the same dict with ``frames`` replaced by ``image`` ((T, 3, h, w) or (3, h, w) normalised
float, from ``beingh0.ops.warp.warp_align``) and ``mask`` ((T, h, w) or (h, w) bool: pixels that
came from the source image); ``intrinsics`` becomes the model input's ``Intrinsics`` (``K_model``,
no distortion), ``distortion`` is dropped; ``mano`` (``global_orient``, ``trans``),
``keypoints_3d`` and ``keypoints_2d`` (now model-input pixels) are balanced/aligned, keeping
numpy/torch and dtype; ``align`` holds ``dst_from_src`` (3x3), ``scale``, ``angle``, and the
draw's ``tries``/``fallback``. ``hand_pose`` and ``betas`` never change. Alignment alone leaves all
3D quantities unchanged.
"""
from __future__ import annotations

import numpy as np
import torch

from .balance import (BalanceConfig, BalanceParams, HandState, balance_affine, draw_balance, rotation_z,
                      transform_mano, transform_points)
from .camera import OFFICIAL_TARGET, Intrinsics, TargetCamera
from .geometry import align_matrix

__all__ = ["AlignTransform", "sample_intrinsics"]

HANDS = ("right", "left")


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _like(x: np.ndarray, ref):
    if isinstance(ref, torch.Tensor):
        return torch.as_tensor(x, dtype=ref.dtype, device=ref.device)
    return x.astype(np.asarray(ref).dtype, copy=False)


def sample_intrinsics(sample: dict, width: int, height: int) -> Intrinsics:
    """The source camera of a sample dict (``intrinsics`` + optional ``distortion``/``distortion_model``)."""
    if "intrinsics" not in sample:
        raise KeyError("sample has no 'intrinsics'; give fx, fy, cx, cy (pixels of 'frames') or an Intrinsics")
    k = sample["intrinsics"]
    dist = sample.get("distortion")
    model = sample.get("distortion_model", "radtan")
    if dist is not None and (not model or not np.any(_np(dist))):  # the loader's "no distortion": zeros, model ""
        dist, model = None, "radtan"
    if isinstance(k, Intrinsics):
        if (k.width, k.height) != (width, height):
            raise ValueError(f"intrinsics are for a {k.width}x{k.height} image but frames are {width}x{height}; "
                             "rescale the intrinsics to the frames as they are")
        if dist is not None:
            return Intrinsics(k.fx, k.fy, k.cx, k.cy, width, height, tuple(_np(dist).reshape(-1).tolist()), model)
        return k
    d = None if dist is None else tuple(_np(dist).astype(np.float64).reshape(-1).tolist())
    return Intrinsics.from_matrix(_np(k).astype(np.float64), width, height, d, model)


class AlignTransform:
    """Callable sample -> aligned (and, with ``balance``, balanced) sample. See the module docstring for keys.

    Args:
        target: the target camera and model input (default: Being-H0's 736.6 px / 1920x1080 -> 448x448).
        balance: ``BalanceConfig`` to draw a depth-scale/rotation move per sample, or None (alignment only).
        sampler: optional fitted ``BalanceSampler``; its weights pick among valid moves per ``source``.
        backend: warp backend (None: ``$BEINGH0_BACKEND`` or auto).
        mean, std: normalisation of the output image ([0, 1] scale; default ImageNet, as InternVL).
        out_dtype: dtype of ``image``.
        fill: pixel value (0..255) of areas the source does not cover.
        seed: seed of the transform's own generator, used for samples without an ``rng_key`` (the
            loader's samples carry one: their draws depend on (loader seed, epoch, sample) only, so a
            resumed run or another worker count balances every sample the same way); ``rng=`` per call
            overrides both.
    """

    def __init__(self, target: TargetCamera = OFFICIAL_TARGET, balance: BalanceConfig | None = None, *, sampler=None,
                 backend=None, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), out_dtype=torch.float32,
                 fill=0.0, seed: int | None = None):
        if not isinstance(target, TargetCamera):
            raise TypeError(f"target must be a TargetCamera, got {type(target).__name__}")
        if balance is not None and not isinstance(balance, BalanceConfig):
            raise TypeError(f"balance must be a BalanceConfig or None, got {type(balance).__name__}")
        if sampler is not None and balance is None:
            balance = sampler.config
        self.target, self.balance, self.sampler, self.backend = target, balance, sampler, backend
        self.mean, self.std, self.out_dtype, self.fill = mean, std, out_dtype, fill
        self.rng = np.random.default_rng(seed)

    def __repr__(self) -> str:
        return (f"AlignTransform(target={self.target}, balance={self.balance}, sampler={type(self.sampler).__name__ if self.sampler else None}, "
                f"backend={self.backend})")

    # -- pieces ---------------------------------------------------------------------------------
    @staticmethod
    def _frames(sample: dict) -> tuple[torch.Tensor, bool]:
        if "frames" not in sample:
            raise KeyError("sample has no 'frames' (uint8 (T, H, W, 3) or (H, W, 3))")
        f = sample["frames"]
        f = f if isinstance(f, torch.Tensor) else torch.from_numpy(np.array(f, copy=not f.flags.writeable or not f.flags.c_contiguous) if isinstance(f, np.ndarray) else np.asarray(f))
        single = f.dim() == 3
        if single:
            f = f[None]
        if f.dim() != 4 or f.shape[-1] != 3:
            raise ValueError(f"frames must be uint8 (T, H, W, 3) or (H, W, 3) RGB, got shape {tuple(f.shape)}")
        if f.dtype != torch.uint8:
            raise TypeError(f"frames must be uint8, got {f.dtype}")
        return f, single

    @staticmethod
    def _hands(sample: dict) -> list[tuple[str, HandState]]:
        """Each present hand's wrist track (T, 3) and keypoints (T, 21, 3) if known, as float64 numpy."""
        mano, kp3 = sample.get("mano") or {}, sample.get("keypoints_3d") or {}
        out = []
        for side in HANDS:
            kp = _np(kp3[side]).astype(np.float64) if side in kp3 else None
            if kp is not None and (kp.ndim != 3 or kp.shape[-1] != 3):
                raise ValueError(f"keypoints_3d[{side!r}] must be (T, N, 3) metres, got {kp.shape}")
            if side in mano:
                if "trans" not in mano[side]:
                    raise KeyError(f"mano[{side!r}] has no 'trans' (T, 3) wrist position")
                t = _np(mano[side]["trans"]).astype(np.float64).reshape(-1, 3)
            elif kp is not None:
                t = kp[:, 0]
            else:
                continue
            fm = sample.get("_frame_mask")  # loader samples: only the valid frames count (padding rows are zeros)
            if fm is not None:
                fm = _np(fm).astype(bool).reshape(-1)
                if fm.shape[0] == t.shape[0]:
                    t, kp = t[fm], (kp[fm] if kp is not None and kp.shape[0] == fm.shape[0] else kp)
                if t.shape[0] == 0:
                    continue
            if not np.all(np.isfinite(t)):
                raise ValueError(f"{side} hand's wrist position has NaN/Inf; mask or drop those frames first")
            out.append((side, HandState(t, kp)))
        return out

    def draw(self, hands: list[HandState], source=None, rng: np.random.Generator | None = None):
        """The balancing draw for these hands (identity without ``balance``)."""
        rng = rng if rng is not None else self.rng
        if self.balance is None:
            return None
        if self.sampler is not None and source is not None:
            return self.sampler.draw(rng, hands, source)
        return draw_balance(rng, hands, self.balance, self.target)

    # -- the hook -------------------------------------------------------------------------------
    def __call__(self, sample: dict, rng: np.random.Generator | None = None, *, params: BalanceParams | None = None) -> dict:
        """Align (and balance) one sample. ``params`` replays a given move instead of drawing one (no rules)."""
        from ..ops.warp import warp_align

        loader = "frames" not in sample and "image" in sample  # a beingh0.data.loader sample (one hand)
        if loader:
            sample = self._from_loader(sample)
        frames, single = self._frames(sample)
        T, H, W, _ = frames.shape
        src = sample_intrinsics(sample, W, H)
        hands = self._hands(sample)
        if rng is None and sample.get("rng_key") is not None:  # loader samples: draws tied to (seed, epoch, sample)
            rng = np.random.default_rng([*map(int, sample["rng_key"]), 0xA119])
        d = self.draw([h for _, h in hands], sample.get("source"), rng) if params is None else None
        params = params if params is not None else d.params if d is not None else BalanceParams()
        al = align_matrix(src, self.target, balance=balance_affine(params, self.target.frame.K))

        K_src = torch.as_tensor(src.K) if src.distorted else None
        dist = torch.tensor(src.dist, dtype=torch.float64) if src.distorted else None
        w = warp_align(frames, torch.as_tensor(al.dst_from_src).expand(T, 3, 3), self.target.size, mean=self.mean,
                       std=self.std, out_dtype=self.out_dtype, fill=self.fill, K_src=K_src, dist=dist,
                       dist_model=src.dist_model, return_mask=True, backend=self.backend)
        out = {k: v for k, v in sample.items() if k not in ("frames", "distortion", "distortion_model")}
        out["image"] = w.image[0] if single else w.image
        out["mask"] = w.mask[0] if single else w.mask
        out["intrinsics"] = al.K_model
        wrists = {side: h.trans for side, h in hands}
        if "mano" in sample and sample["mano"]:
            out["mano"] = {}
            for side, p in sample["mano"].items():
                p2 = dict(p)
                if not params.is_identity:
                    go = p["global_orient"]
                    shape = np.shape(_np(go))
                    go2, tr2 = transform_mano(_np(go).reshape(-1, 3), _np(p["trans"]).reshape(-1, 3), params)
                    p2["global_orient"] = _like(go2.reshape(shape), go)
                    p2["trans"] = _like(tr2.reshape(np.shape(_np(p["trans"]))), p["trans"])
                out["mano"][side] = p2
        if sample.get("keypoints_3d"):
            out["keypoints_3d"] = {side: (v if params.is_identity else
                                          _like(transform_points(_np(v).astype(np.float64), wrists[side], params), v))
                                   for side, v in sample["keypoints_3d"].items()}
        if sample.get("keypoints_2d"):
            out["keypoints_2d"] = {side: _like(al.src_to_model(_np(v).astype(np.float64)), v)
                                   for side, v in sample["keypoints_2d"].items()}
        out["align"] = {"dst_from_src": al.dst_from_src, "scale": params.scale, "angle": params.angle,
                        "tries": d.tries if d else 0, "fallback": d.fallback if d else False}
        return self._to_loader(out, sample, params) if loader else out

    # -- the data loader's sample layout (beingh0.data.loader, docs/data.md) ---------------------
    @staticmethod
    def _from_loader(sample: dict) -> dict:
        s = dict(sample)
        s["frames"] = s.pop("image")
        s["_frame_mask"] = s.pop("mask", None)
        m = s.get("mano")
        if isinstance(m, dict) and "trans" in m:
            if "hand" not in s:
                raise KeyError("a loader sample with one hand's 'mano' needs 'hand' ('left' or 'right')")
            s["mano"] = {s["hand"]: m}
        return s

    @staticmethod
    def _to_loader(out: dict, sample: dict, params: BalanceParams) -> dict:
        """Back to the loader's layout: one hand's ``mano`` (its wrist-relative ``joints`` and the
        reference frame moved with it), ``mask`` stays the frame validity, the border is ``image_mask``."""
        out["image_mask"] = out.pop("mask")
        out["mask"] = sample["_frame_mask"]
        k = out["intrinsics"]  # the model input's pinhole camera (undistorted), as the loader keeps it
        out["intrinsics"] = np.array([k.fx, k.fy, k.cx, k.cy], np.float64)
        out["width"], out["height"] = int(k.width), int(k.height)
        out["distortion"], out["distortion_model"] = np.zeros(5, np.float64), ""
        out.pop("_frame_mask", None)
        if isinstance(out.get("mano"), dict) and sample.get("hand") in out["mano"]:
            p = dict(out["mano"][sample["hand"]])
            if not params.is_identity:
                if "joints" in p:  # wrist-relative: only the rotation acts on them (depth scaling moves the hand rigidly)
                    j = _np(p["joints"]).astype(np.float64)
                    p["joints"] = _like(j @ rotation_z(params.angle).T, p["joints"])
                if "ref_global_orient" in p and "ref_trans" in p:
                    go, tr = p["ref_global_orient"], p["ref_trans"]
                    go2, tr2 = transform_mano(_np(go).reshape(1, 3), _np(tr).reshape(1, 3), params)
                    p["ref_global_orient"] = _like(go2.reshape(np.shape(_np(go))), go)
                    p["ref_trans"] = _like(tr2.reshape(np.shape(_np(tr))), tr)
            out["mano"] = p
        return out
