"""Left and right hands, and THE path from MANO parameters to motion features.

**Left-hand convention** (settled here, once): every motion feature is computed in the right-hand
convention. A left hand is mirrored across the camera's x = 0 plane first
(:func:`to_right_hand`: axis-angle rotations (x, y, z) -> (x, -y, -z), points (x, y, z) -> (-x, y, z);
the math is ``beingh0.mano.mirror_pose`` / ``mirror_points``), so one tokenizer serves both hands
and a left hand and its mirror image give the same features. Decoding mirrors back
(:func:`from_right_hand`, the same map: mirroring is its own inverse).

**One feature path** (:func:`hand_features`): camera-frame parameters of one or many windows or
clips (rows of global_orient, hand_pose, trans and the wrist-relative keypoints of the hand's own
model), the hand's side and an optional reference frame -> MANO-D51...D162 features. Both the data
loader (``beingh0.data.samples.features_batch``, joints from the episode's motion sidecar) and the
tokenizer's in-memory clips (joints from :func:`hand_joints`) call it; nothing else builds features.
"""
from __future__ import annotations

from typing import Sequence

import torch

from ..core.rotations import axis_angle_to_matrix, matrix_to_6d, matrix_to_axis_angle
from .features import NUM_BETAS, NUM_FINGER_JOINTS, NUM_KEYPOINTS, _spec

__all__ = ["SIDES", "to_right_hand", "from_right_hand", "hand_joints", "hand_features"]

SIDES = ("left", "right")
_POSE_KEYS = ("global_orient", "hand_pose", "ref_global_orient")   # axis-angle (..., 3k)
_POINT_KEYS = ("trans", "ref_trans")                               # points (..., 3)
_JOINT_KEYS = ("joints",)                                          # keypoints (..., 21, 3)


def _left_mask(side, lead: int | None):
    """side -> None (all right), True (all left) or a (B,) bool tensor (per leading index)."""
    if isinstance(side, str):
        if side not in SIDES:
            raise ValueError(f"side must be 'left' or 'right', got {side!r}")
        return True if side == "left" else None
    sides = list(side)
    bad = [s for s in sides if s not in SIDES]
    if bad:
        raise ValueError(f"sides must be 'left' or 'right', got {bad[0]!r}")
    if lead is not None and len(sides) != lead:
        raise ValueError(f"got {len(sides)} sides for a batch of {lead}")
    m = torch.tensor([s == "left" for s in sides], dtype=torch.bool)
    return True if bool(m.all()) and len(sides) else (None if not bool(m.any()) else m)


def to_right_hand(params: dict, side: str | Sequence[str]) -> dict:
    """Mirror a left hand's parameters into the right-hand convention (right hands unchanged).

    ``params`` holds torch tensors; mirrored keys: ``global_orient``, ``hand_pose``,
    ``ref_global_orient`` (axis-angle), ``trans``, ``ref_trans`` (points) and ``joints``
    (keypoints (..., 21, 3)); others (betas, masks) are copied. ``side`` is ``"left"``/``"right"``
    or one side per leading (batch) index. Returns a new dict; the inputs are not modified.
    """
    from ..mano.model import mirror_points, mirror_pose

    lead = None
    if not isinstance(side, str):
        first = next((params[k] for k in _POSE_KEYS + _POINT_KEYS + _JOINT_KEYS if k in params), None)
        lead = None if first is None else first.shape[0]
    left = _left_mask(side, lead)
    out = dict(params)
    if left is None:
        return out
    for keys, fn in ((_POSE_KEYS, mirror_pose), (_POINT_KEYS + _JOINT_KEYS, mirror_points)):
        for k in keys:
            if k not in params:
                continue
            x = params[k]
            if left is True:
                out[k] = fn(x)
            else:
                y = x.clone()
                y[left.to(x.device)] = fn(x[left.to(x.device)])
                out[k] = y
    return out


def from_right_hand(params: dict, side: str | Sequence[str]) -> dict:
    """Inverse of :func:`to_right_hand` (the same mirror: it is its own inverse)."""
    return to_right_hand(params, side)


def hand_joints(params: dict, side: str = "right", model=None) -> torch.Tensor:
    """Wrist-relative keypoints (T, 21, 3) of camera-frame parameters, from the hand's own model
    (``model``, default ``beingh0.mano.hand_model(side)``), in the hand's own convention (not
    mirrored): what the data build stores in the motion sidecar."""
    from ..mano.model import hand_model

    model = model if model is not None else hand_model(side)
    go = params["global_orient"]
    betas = params.get("betas")
    if betas is None:
        betas = go.new_zeros(1, NUM_BETAS)
    betas = torch.as_tensor(betas, dtype=go.dtype, device=go.device)
    J = model.keypoints(betas[None] if betas.dim() == 1 else betas, go, params["hand_pose"], params["trans"])
    return J - J[..., :1, :]


def hand_features(params: dict, spec="D162", side: str | Sequence[str] = "right") -> torch.Tensor:
    """THE motion-feature path: camera-frame parameters -> features (..., T, D) (dtype of the input).

    Args:
        params: torch tensors with leading dims (...) shared by all keys:
            ``global_orient`` (..., T, 3), ``hand_pose`` (..., T, 45) axis-angle (native order),
            ``trans`` (..., T, 3) wrist position; ``joints`` (..., T, 21, 3) wrist-relative
            keypoints of the hand's own model (required by D114/D162; :func:`hand_joints`);
            ``betas`` (..., 10) or (..., T, 10) (required by D109); optionally the reference
            frame ``ref_global_orient`` (..., 3) and ``ref_trans`` (..., 3), in the same camera
            frame: then every frame is expressed in it, R' = R_ref^T R_t, t' = R_ref^T (t - t_ref),
            J' = R_ref^T J (exact and rigid for the wrist-trans convention).
        spec: a ``FeatureSpec`` or its name.
        side: ``"left"``/``"right"``, or one per leading index: left hands (and their reference)
            are mirrored into the right-hand convention first (:func:`to_right_hand`).
    """
    spec = _spec(spec)
    for k, w in (("global_orient", 3), ("hand_pose", 45), ("trans", 3)):
        if k not in params:
            raise ValueError(f"hand_features needs params[{k!r}] (..., T, {w}); got keys {sorted(params)}")
        x = params[k]
        if not isinstance(x, torch.Tensor) or x.dim() < 2 or x.shape[-1] != w:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"params[{k!r}] must be a (..., T, {w}) tensor, got {shape}")
    p = to_right_hand(params, side)
    go, hp, tr = p["global_orient"], p["hand_pose"], p["trans"]
    lead = go.shape[:-1]                                   # (..., T)
    if hp.shape[:-1] != lead or tr.shape[:-1] != lead:
        raise ValueError(f"global_orient, hand_pose and trans need the same leading shape, got "
                         f"{tuple(go.shape)}, {tuple(hp.shape)}, {tuple(tr.shape)}")
    has_ref = "ref_global_orient" in p or "ref_trans" in p
    if has_ref and ("ref_global_orient" not in p or "ref_trans" not in p):
        raise ValueError("pass both ref_global_orient and ref_trans (the reference frame), or neither")
    # every axis-angle -> matrix of this call in ONE batched conversion (per-call overhead dominates
    # at loader sizes): the wrist rotations, the finger rotations (6D specs) and the reference
    parts = [go.reshape(-1, 3)]
    if spec.rot != "aa":
        parts.append(hp.reshape(-1, 3))
    if has_ref:
        ref_go = p["ref_global_orient"].to(go.dtype)
        parts.append(ref_go.reshape(-1, 3))
    mats = axis_angle_to_matrix(torch.cat(parts)).split([x.shape[0] for x in parts])
    R = mats[0].reshape(*lead, 3, 3)                       # (..., T, 3, 3)
    J = p.get("joints")
    if has_ref:
        RrefT = mats[-1].reshape(*ref_go.shape[:-1], 3, 3).transpose(-1, -2)[..., None, :, :]
        R = RrefT @ R
        tr = ((tr - p["ref_trans"].to(go.dtype)[..., None, :])[..., None, :] @ RrefT.transpose(-1, -2))[..., 0, :]
        if J is not None:
            J = J.to(go.dtype) @ RrefT.transpose(-1, -2)
    blocks = []
    if spec.rot == "aa":
        blocks += [hp, matrix_to_axis_angle(R) if has_ref else go]
    else:
        hpR = mats[1].reshape(*lead, NUM_FINGER_JOINTS, 3, 3)
        blocks += [matrix_to_6d(hpR).reshape(*lead, NUM_FINGER_JOINTS * 6), matrix_to_6d(R)]
    blocks.append(tr)
    if spec.has_betas:
        b = p.get("betas")
        if b is None:
            raise ValueError(f"{spec.name} stores betas: pass params['betas'] of shape (..., 10) or (..., T, 10)")
        b = torch.as_tensor(b, dtype=go.dtype, device=go.device)
        if b.shape[-1] != NUM_BETAS:
            raise ValueError(f"{spec.name} stores {NUM_BETAS} betas, got {tuple(b.shape)}")
        if b.dim() == go.dim() - 1:
            b = b[..., None, :]
        blocks.append(b.expand(*lead, NUM_BETAS))
    if spec.has_joints:
        if J is None:
            raise ValueError(f"{spec.name} stores joint positions: pass params['joints'] (..., T, 21, 3), the "
                             "wrist-relative keypoints of the hand's model (beingh0.motion.hand_joints)")
        if J.shape != (*lead, NUM_KEYPOINTS, 3):
            raise ValueError(f"params['joints'] must be {(*lead, NUM_KEYPOINTS, 3)}, got {tuple(J.shape)}")
        blocks.append(J.to(go.dtype).reshape(*lead, NUM_KEYPOINTS * 3))
    return torch.cat(blocks, -1)
