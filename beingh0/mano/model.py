"""``ManoModel``: the hand model as an ``nn.Module`` (buffers + parameter semantics), calling the ops.

Parameter conventions (ENGINEERING.md section 3):
- ``trans``: ``"wrist"`` (default, Being-H0): the posed wrist joint's position; ``"smplx"``: added to
  the un-centred mesh like smplx's ``transl``.
- ``flat_hand_mean=True`` (default, Being-H0): zero ``hand_pose`` is the flat hand. With False,
  ``hands_mean`` is added as smplx does by default.
- ``use_pca``: ``hand_pose`` holds ``num_pca_comps`` PCA coefficients, expanded with
  ``hands_components``.
- Left hands: a left model file (or ``side="left"``). Official ``MANO_LEFT.pkl`` files carry a
  sign error in the x row of ``shapedirs`` (smplx issue #48); it is fixed on load unless the file
  says it was already fixed. ``mirror_pose``/``mirror_points`` map between a right and a left hand.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..core.constants import KEYPOINT_ORDER, NUM_JOINTS, PARENTS, TIP_CONVENTIONS, TRANS_MODES
from ..core.errors import UserFileError, UserValueError
from ..ops.mano import ManoConstants, mano_forward, mano_joints
from .io import load_model_file


@dataclass
class ManoOutput:
    """vertices (B, V, 3) or None; keypoints (B, 21, 3) in Being-H0 order; metres."""

    vertices: torch.Tensor | None
    keypoints: torch.Tensor

    @property
    def joints(self) -> torch.Tensor:
        """The 16 MANO joints (B, 16, 3) in MANO's native order (what smplx returns)."""
        inv = [KEYPOINT_ORDER.index(k) for k in range(NUM_JOINTS)]
        return self.keypoints[:, inv]


def mirror_pose(pose: torch.Tensor) -> torch.Tensor:
    """Axis-angle (..., 3k) of a right hand -> the mirrored (x -> -x) left hand's, and back."""
    sign = pose.new_tensor([1.0, -1.0, -1.0])
    return (pose.reshape(*pose.shape[:-1], -1, 3) * sign).reshape(pose.shape)


def mirror_points(points: torch.Tensor) -> torch.Tensor:
    """Mirror points (..., 3) across the x = 0 plane (right <-> left hand frames)."""
    return points * points.new_tensor([-1.0, 1.0, 1.0])


def _side_from_name(path: Path) -> str | None:
    up = path.name.upper()
    return "left" if "LEFT" in up else "right" if "RIGHT" in up else None


class ManoModel(torch.nn.Module):
    """A MANO-layout hand model. Build with ``ManoModel.embedded()`` or ``ManoModel.from_file()``."""

    def __init__(self, arrays: dict, side: str = "right", *, use_pca: bool = False, num_pca_comps: int = 6,
                 flat_hand_mean: bool = True, trans_mode: str = "wrist", tips: str = "beingh0", source: str = "arrays"):
        super().__init__()
        if side not in ("right", "left"):
            raise UserValueError(f"side must be 'right' or 'left', got {side!r}")
        if trans_mode not in TRANS_MODES:
            raise UserValueError(f"trans_mode must be one of {list(TRANS_MODES)}, got {trans_mode!r}")
        if tips not in TIP_CONVENTIONS:
            raise UserValueError(f"tips must be one of {list(TIP_CONVENTIONS)}, got {tips!r}")
        if use_pca and not 1 <= num_pca_comps <= 45:
            raise UserValueError(f"num_pca_comps must be in [1, 45], got {num_pca_comps}")
        self.side, self.use_pca, self.num_pca_comps = side, use_pca, num_pca_comps
        self.flat_hand_mean, self.trans_mode, self.tips, self.source = flat_hand_mean, trans_mode, tips, source
        f64 = lambda k: torch.as_tensor(np.asarray(arrays[k]), dtype=torch.float64)
        for k in ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "hands_components", "hands_mean"):
            self.register_buffer(k, f64(k), persistent=False)
        self.register_buffer("faces", torch.as_tensor(np.asarray(arrays["f"]), dtype=torch.long), persistent=False)
        self._cache: dict = {}

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def embedded(cls, side: str = "right", **kwargs) -> "ManoModel":
        """The generated default hand (NOT MANO: see ``beingh0.mano.embedded``)."""
        from .embedded import generate_hand_model

        return cls(generate_hand_model(side), side, source=f"embedded:{side}", **kwargs)

    @classmethod
    def from_file(cls, path, side: str | None = None, *, fix_left_shapedirs: bool | None = None, **kwargs) -> "ManoModel":
        """Load ``MANO_RIGHT.pkl``/``MANO_LEFT.pkl`` (safely), or a converted ``.npz``/``.safetensors``.

        ``side`` defaults to 'left' when the file name says LEFT, else 'right'.
        ``fix_left_shapedirs``: None = fix an official left pickle's shapedirs sign unless the file
        records that it is already fixed (our converted and embedded files do).
        """
        path = Path(path)
        if side not in (None, "right", "left"):
            raise UserValueError(f"side must be 'right', 'left' or None (from the file), got {side!r}")
        arrays, meta = load_model_file(path)
        if meta.get("side") not in (None, "right", "left"):
            raise UserValueError(f"{path}: its metadata names side {meta['side']!r}; re-create the file with "
                                 "`beingh0 mano convert` (side 'right' or 'left')")
        side = side or meta.get("side") or _side_from_name(path) or "right"
        if fix_left_shapedirs is None:
            fix_left_shapedirs = side == "left" and not meta.get("shapedirs_fixed") and "beingh0_version" not in meta
        if fix_left_shapedirs:
            arrays = dict(arrays)
            arrays["shapedirs"] = arrays["shapedirs"].copy()
            arrays["shapedirs"][:, 0, :] *= -1
        return cls(arrays, side, source=str(path), **kwargs)

    def arrays(self) -> dict:
        """The model in MANO's array layout (numpy), e.g. to write a pickle or a native file."""
        out = {k: getattr(self, k).cpu().numpy() for k in ("v_template", "shapedirs", "posedirs", "J_regressor",
                                                            "weights", "hands_components", "hands_mean")}
        out["kintree_table"] = np.stack([np.array(PARENTS, dtype=np.int64), np.arange(NUM_JOINTS)])
        out["f"] = self.faces.cpu().numpy()
        return out

    # -- kernels' view of the model ------------------------------------------------------------
    def _apply(self, fn, *args, **kwargs):
        self._cache = {}
        return super()._apply(fn, *args, **kwargs)

    @property
    def tip_ids(self) -> tuple[int, ...]:
        return TIP_CONVENTIONS[self.tips]

    def constants(self, device=None, dtype=torch.float32, tips_only: bool = False) -> ManoConstants:
        """Packed constants for the kernels on ``device`` (float64 for float64 inputs, else float32)."""
        device = torch.device(device) if device is not None else self.v_template.device
        dtype = torch.float64 if dtype == torch.float64 else torch.float32
        key = (device, dtype, tips_only)
        if key not in self._cache:
            full = self._cache.get((device, dtype, False))
            if full is None:
                full = ManoConstants.from_arrays(self.v_template, self.shapedirs, self.posedirs, self.J_regressor,
                                                 self.weights, self.tip_ids, device=device, dtype=dtype)
                self._cache[(device, dtype, False)] = full
            self._cache[key] = full.tips() if tips_only else full
        return self._cache[key]

    # -- parameters -> kernel inputs ---------------------------------------------------------
    def full_pose(self, global_orient: torch.Tensor, hand_pose: torch.Tensor) -> torch.Tensor:
        """(B, 3) + (B, 45 or num_pca_comps) -> (B, 48) axis-angle for the kernels."""
        if self.use_pca:
            if hand_pose.shape[-1] != self.num_pca_comps:
                raise ValueError(f"hand_pose must have {self.num_pca_comps} PCA coefficients, got shape {tuple(hand_pose.shape)}")
            hand_pose = hand_pose @ self.hands_components[: self.num_pca_comps].to(hand_pose)
        elif hand_pose.shape[-1] != 45:
            raise ValueError(f"hand_pose must be (B, 45) axis-angle (or set use_pca=True), got {tuple(hand_pose.shape)}")
        if not self.flat_hand_mean:
            hand_pose = hand_pose + self.hands_mean.to(hand_pose)
        return torch.cat([global_orient, hand_pose], -1)

    def _inputs(self, betas, global_orient, hand_pose, trans):
        given = [t for t in (betas, global_orient, hand_pose, trans) if isinstance(t, torch.Tensor)]
        ref = given[0] if given else self.v_template.new_zeros(0).float()
        dt, dev = ref.dtype, ref.device
        B = max([t.shape[0] for t in (global_orient, hand_pose, trans) if isinstance(t, torch.Tensor) and t.dim() == 2] or [1])
        npose = self.num_pca_comps if self.use_pca else 45
        z = lambda n: torch.zeros(B, n, dtype=dt, device=dev)
        betas = torch.zeros(1, self.shapedirs.shape[-1], dtype=dt, device=dev) if betas is None else betas
        if betas.dim() == 1:
            betas = betas[None]
        global_orient = z(3) if global_orient is None else global_orient
        hand_pose = z(npose) if hand_pose is None else hand_pose
        trans = z(3) if trans is None else trans
        for name, t in (("global_orient", global_orient), ("hand_pose", hand_pose), ("trans", trans)):
            if t.dim() != 2:
                raise ValueError(f"{name} must be 2-D (B, n), got shape {tuple(t.shape)}")
        return betas, self.full_pose(global_orient, hand_pose), trans

    def forward(self, betas=None, global_orient=None, hand_pose=None, trans=None, *, backend=None) -> ManoOutput:
        """Vertices (B, V, 3) and 21 keypoints. Missing parameters are zeros; betas may be (S,) or (1, S) to share."""
        betas, pose, trans = self._inputs(betas, global_orient, hand_pose, trans)
        v, k = mano_forward(betas, pose, trans, self.constants(pose.device, pose.dtype),
                            trans_mode=TRANS_MODES[self.trans_mode], backend=backend)
        return ManoOutput(v, k)

    def keypoints(self, betas=None, global_orient=None, hand_pose=None, trans=None, *, backend=None) -> torch.Tensor:
        """The 21 keypoints (B, 21, 3) without skinning the mesh (``mano_joints``)."""
        betas, pose, trans = self._inputs(betas, global_orient, hand_pose, trans)
        return mano_joints(betas, pose, trans, self.constants(pose.device, pose.dtype, tips_only=True),
                           trans_mode=TRANS_MODES[self.trans_mode], backend=backend)

    def extra_repr(self) -> str:
        return (f"side={self.side}, source={self.source}, use_pca={self.use_pca}, flat_hand_mean={self.flat_hand_mean}, "
                f"trans_mode={self.trans_mode}, tips={self.tips}")


#: File names looked for, in order, when :func:`hand_model` is given a folder.
MODEL_FILE_NAMES = ("MANO_{SIDE}.pkl", "MANO_{SIDE}.npz", "MANO_{SIDE}.safetensors", "mano_{side}.npz",
                    "mano_{side}.safetensors")


@functools.lru_cache(maxsize=16)
def _cached_model(side: str, path: str | None) -> ManoModel:
    if path is None:
        return ManoModel.embedded(side)
    p = Path(path)
    if p.is_dir():
        names = [n.format(SIDE=side.upper(), side=side) for n in MODEL_FILE_NAMES]
        found = next((p / n for n in names if (p / n).is_file()), None)
        if found is None:
            raise UserFileError(f"hand-model folder {p} has none of {', '.join(names)}; put the MANO file for the "
                                f"{side} hand there, or pass no folder to use the embedded hand")
        p = found
    elif not p.is_file():
        raise UserFileError(f"hand model {p} does not exist; pass a MANO .pkl/.npz/.safetensors file or a folder "
                            "holding MANO_RIGHT/MANO_LEFT files")
    return ManoModel.from_file(p, side=side)


def hand_model(side: str = "right", path=None) -> ManoModel:
    """The one cached hand-model loader: the embedded hand for ``side``, or the MANO file ``path``
    (a .pkl/.npz/.safetensors file, or a folder searched for :data:`MODEL_FILE_NAMES`).

    Models are cached per (side, resolved path) and shared: treat them as read-only (``.to()``
    returns the same module; copy it with ``copy.deepcopy`` before changing it).
    """
    if side not in ("left", "right"):
        raise UserValueError(f"side must be 'left' or 'right', got {side!r}")
    return _cached_model(side, None if path is None else str(Path(path).expanduser().resolve()))
