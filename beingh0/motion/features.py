"""Per-frame MANO motion features D51 / D99 / D109 / D114 / D162, the wrist/finger part split and
per-dimension normalisation (ENGINEERING.md section 4, "Motion features").

Block order inside one feature vector (slices in ``FeatureSpec.slices``):

====== =================================================================================
D51    hand_pose aa [0:45]  | global_orient aa [45:48]  | trans [48:51]
D99    hand_pose 6D [0:90]  | global_orient 6D [90:96]  | trans [96:99]
D109   D99                  | betas [99:109]
D114   D51                  | joints [51:114]
D162   D99                  | joints [99:162]   (default)
====== =================================================================================

- aa = axis-angle; 6D = first two columns of each rotation matrix, concat(col0, col1), per joint
  (``beingh0.core.rotations.matrix_to_6d``); hand_pose is 15 joints in MANO native order
  (index, middle, pinky, ring, thumb), 3 or 6 numbers each, joint-major.
- joints = the model's 21 keypoints (Being-H0 order, ``beingh0.core.constants.KEYPOINT_NAMES``)
  relative to the wrist, J - J[0], flattened row-major (x, y, z per keypoint); the wrist row is all
  zeros and is kept so the sizes are 114 / 162. Joints are auxiliary (a reconstruction target):
  ``decode_features`` returns them but never needs them.

Part split (for the part-level tokenizer): wrist part = global_orient then trans (6 or 9 dims);
finger part = hand_pose, then betas (D109), then joints without the wrist row (60 dims).
D51: 6 / 45, D99: 9 / 90, D109: 9 / 100, D114: 6 / 105, D162: 9 / 150.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..core.rotations import matrix_to_axis_angle, sixd_to_matrix

__all__ = ["FEATURE_NAMES", "FeatureSpec", "encode_features", "decode_features", "split_parts", "merge_parts",
           "NormStats"]

#: name -> (rotation representation, has betas, has joints)
_LAYOUTS = {
    "D51": ("aa", False, False),
    "D99": ("6d", False, False),
    "D109": ("6d", True, False),
    "D114": ("aa", False, True),
    "D162": ("6d", False, True),
}
FEATURE_NAMES = tuple(_LAYOUTS)
NUM_FINGER_JOINTS = 15
NUM_KEYPOINTS = 21
NUM_BETAS = 10


@dataclass(frozen=True)
class FeatureSpec:
    """Layout of one per-frame motion feature vector.

    Attributes:
        name: one of "D51", "D99", "D109", "D114", "D162" (default, as in Being-H0).
    Derived (properties): ``rot`` ("aa" or "6d"), ``rot_dim`` (3 or 6), ``has_betas``,
    ``has_joints``, ``dim``, ``slices`` (block -> slice), ``wrist_dim``, ``finger_dim``.
    """

    name: str = "D162"

    def __post_init__(self):
        if self.name not in _LAYOUTS:
            raise ValueError(f"FeatureSpec name must be one of {list(_LAYOUTS)}, got {self.name!r}")

    @classmethod
    def from_dim(cls, dim: int) -> "FeatureSpec":
        """The spec whose vector has ``dim`` entries (the five sizes are distinct)."""
        for name in _LAYOUTS:
            if cls(name).dim == dim:
                return cls(name)
        raise ValueError(f"no motion feature has {dim} dims; known sizes: "
                         f"{ {n: cls(n).dim for n in _LAYOUTS} }")

    @property
    def rot(self) -> str:
        return _LAYOUTS[self.name][0]

    @property
    def rot_dim(self) -> int:
        return 3 if self.rot == "aa" else 6

    @property
    def has_betas(self) -> bool:
        return _LAYOUTS[self.name][1]

    @property
    def has_joints(self) -> bool:
        return _LAYOUTS[self.name][2]

    @property
    def slices(self) -> dict:
        """Block name -> slice into the feature vector, in storage order."""
        sizes = [("hand_pose", NUM_FINGER_JOINTS * self.rot_dim), ("global_orient", self.rot_dim), ("trans", 3)]
        if self.has_betas:
            sizes.append(("betas", NUM_BETAS))
        if self.has_joints:
            sizes.append(("joints", NUM_KEYPOINTS * 3))
        out, start = {}, 0
        for key, n in sizes:
            out[key] = slice(start, start + n)
            start += n
        return out

    @property
    def dim(self) -> int:
        return list(self.slices.values())[-1].stop

    @property
    def wrist_dim(self) -> int:
        return self.rot_dim + 3

    @property
    def finger_dim(self) -> int:
        return self.dim - self.wrist_dim - (3 if self.has_joints else 0)


def _spec(spec) -> FeatureSpec:
    if isinstance(spec, FeatureSpec):
        return spec
    if isinstance(spec, str):
        return FeatureSpec(spec)
    raise TypeError(f"spec must be a FeatureSpec or one of {list(_LAYOUTS)}, got {type(spec).__name__}")


def _check_dim(x: torch.Tensor, dim: int, what: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{what} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() < 1 or x.shape[-1] != dim:
        got = tuple(x.shape)
        hint = ""
        if x.dim() >= 1:
            try:
                hint = f" (that size is {FeatureSpec.from_dim(x.shape[-1]).name}: pass that spec)"
            except ValueError:
                pass
        raise ValueError(f"{what} must have last dimension {dim}, got shape {got}{hint}")


def _frames(params: dict, key: str, width: int) -> torch.Tensor:
    if key not in params or params[key] is None:
        raise ValueError(f"params needs {key!r} of shape (T, {width}); got keys {sorted(params)}")
    x = params[key]
    if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[1] != width:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"params[{key!r}] must be a (T, {width}) tensor, got {shape}")
    return x


def encode_features(params: dict, spec="D162", model=None) -> torch.Tensor:
    """MANO parameters of T frames -> motion features (T, D).

    Args:
        params: dict with global_orient (T, 3), hand_pose (T, 45) axis-angle (native order, no PCA),
            trans (T, 3) and betas (10,), (1, 10) or (T, 10). betas is required for D109; for the
            joint features it defaults to zeros (the mean shape).
        spec: a ``FeatureSpec`` or its name.
        model: a ``beingh0.mano.ManoModel`` (use_pca=False); required for D114/D162, whose joints
            come from ``model.keypoints``. The joints are stored wrist-relative, so the model's
            trans convention does not change them.
    Returns:
        (T, spec.dim), dtype of global_orient.
    """
    spec = _spec(spec)
    go = _frames(params, "global_orient", 3)
    T = go.shape[0]
    hp = _frames(params, "hand_pose", 45)
    tr = _frames(params, "trans", 3)
    if hp.shape[0] != T or tr.shape[0] != T:
        raise ValueError(f"global_orient, hand_pose and trans need the same T, got {T}, {hp.shape[0]}, {tr.shape[0]}")
    betas = params.get("betas")
    if betas is not None:
        betas = torch.as_tensor(betas, dtype=go.dtype, device=go.device)
        if betas.dim() == 1:
            betas = betas[None]
        if betas.dim() != 2 or betas.shape[0] not in (1, T):
            raise ValueError(f"betas must be (S,), (1, S) or (T, S) with T={T}, got {tuple(betas.shape)}")
    p = {"global_orient": go, "hand_pose": hp, "trans": tr}
    if spec.has_betas:
        if betas is None:
            raise ValueError(f"{spec.name} stores betas: pass params['betas'] of shape (10,) or (T, 10)")
        if betas.shape[1] != NUM_BETAS:
            raise ValueError(f"{spec.name} stores {NUM_BETAS} betas, got {betas.shape[1]}")
        p["betas"] = betas.expand(T, NUM_BETAS)
    if spec.has_joints:
        if model is None:
            raise ValueError(f"{spec.name} stores joint positions: pass model=ManoModel.embedded(side) "
                             f"(or ManoModel.from_file(...)), or use a spec without joints (D51/D99/D109)")
        J = model.keypoints(betas, go, hp, tr)                      # (T, 21, 3)
        p["joints"] = J - J[:, :1]
    from .hands import hand_features   # the one feature path (hands imports this module)

    return hand_features(p, spec, "right")


def decode_features(x: torch.Tensor, spec="D162") -> dict:
    """Motion features (..., D) -> dict of MANO parameters.

    Returns global_orient (..., 3) and hand_pose (..., 45) as axis-angle (6D goes through
    Gram-Schmidt, so any network output decodes to valid rotations), trans (..., 3), and where the
    spec stores them betas (..., 10) and joints (..., 21, 3) (wrist-relative).
    """
    spec = _spec(spec)
    _check_dim(x, spec.dim, f"features for {spec.name}")
    s = spec.slices
    lead = x.shape[:-1]
    hp, go = x[..., s["hand_pose"]], x[..., s["global_orient"]]
    if spec.rot == "6d":
        hp = matrix_to_axis_angle(sixd_to_matrix(hp.reshape(*lead, NUM_FINGER_JOINTS, 6))).reshape(*lead, 45)
        go = matrix_to_axis_angle(sixd_to_matrix(go))
    out = {"global_orient": go, "hand_pose": hp, "trans": x[..., s["trans"]]}
    if spec.has_betas:
        out["betas"] = x[..., s["betas"]]
    if spec.has_joints:
        out["joints"] = x[..., s["joints"]].reshape(*lead, NUM_KEYPOINTS, 3)
    return out


def split_parts(x: torch.Tensor, spec="D162"):
    """Features (..., D) -> (wrist (..., spec.wrist_dim), finger (..., spec.finger_dim)).

    wrist = [global_orient, trans]; finger = [hand_pose, betas?, joints without the wrist row?].
    """
    spec = _spec(spec)
    _check_dim(x, spec.dim, f"features for {spec.name}")
    s = spec.slices
    wrist = torch.cat([x[..., s["global_orient"]], x[..., s["trans"]]], -1)
    finger = [x[..., s["hand_pose"]]]
    if spec.has_betas:
        finger.append(x[..., s["betas"]])
    if spec.has_joints:
        finger.append(x[..., s["joints"]][..., 3:])
    return wrist, torch.cat(finger, -1)


def merge_parts(wrist: torch.Tensor, finger: torch.Tensor, spec="D162") -> torch.Tensor:
    """Inverse of ``split_parts``: (..., wrist_dim) + (..., finger_dim) -> (..., D).

    The dropped wrist row of the joints is restored as zeros (it is zero by construction).
    """
    spec = _spec(spec)
    _check_dim(wrist, spec.wrist_dim, f"wrist part for {spec.name}")
    _check_dim(finger, spec.finger_dim, f"finger part for {spec.name}")
    if wrist.shape[:-1] != finger.shape[:-1]:
        raise ValueError(f"wrist and finger parts need the same leading shape, got {tuple(wrist.shape)} "
                         f"and {tuple(finger.shape)}")
    r, n_hp = spec.rot_dim, NUM_FINGER_JOINTS * spec.rot_dim
    blocks = [finger[..., :n_hp], wrist[..., :r], wrist[..., r:]]
    rest = finger[..., n_hp:]
    if spec.has_betas:
        blocks.append(rest[..., :NUM_BETAS])
        rest = rest[..., NUM_BETAS:]
    if spec.has_joints:
        blocks += [torch.zeros_like(rest[..., :3]), rest]
    return torch.cat(blocks, -1)


@dataclass
class NormStats:
    """Per-dimension normalisation x_n = (x - mean) / std, saved with the tokenizer.

    Attributes:
        mean: (D,) float64 per-dimension mean.
        std: (D,) float64 per-dimension standard deviation, already floored at ``floor``.
        floor: lower bound on std, so constant dims (e.g. the zero wrist row of the joints, or a
            fixed betas) map to 0 instead of dividing by ~0. 1e-3 is 1 mm / 1 mrad in the
            library's units: small against real motion, large against rounding noise.
    """

    mean: torch.Tensor
    std: torch.Tensor
    floor: float = 1e-3
    version: int = 1

    def __post_init__(self):
        self.mean = torch.as_tensor(self.mean, dtype=torch.float64)
        self.std = torch.as_tensor(self.std, dtype=torch.float64)
        if self.mean.dim() != 1 or self.mean.shape != self.std.shape:
            raise ValueError(f"NormStats needs mean and std of the same shape (D,), got "
                             f"{tuple(self.mean.shape)} and {tuple(self.std.shape)}")
        if not self.floor > 0:
            raise ValueError(f"NormStats floor must be > 0, got {self.floor}")
        if not bool(torch.isfinite(self.mean).all() and torch.isfinite(self.std).all()):
            raise ValueError("NormStats mean/std contain NaN or Inf; check the data they were fitted on")
        if bool((self.std < self.floor).any()):
            raise ValueError(f"NormStats std must be >= floor={self.floor}; build it with NormStats.fit")

    @property
    def dim(self) -> int:
        return self.mean.shape[0]

    @classmethod
    def fit(cls, x: torch.Tensor, floor: float = 1e-3, mask: torch.Tensor | None = None) -> "NormStats":
        """Fit from features x (..., D); ``mask`` (...,) bool keeps only valid frames (e.g. no padding)."""
        if not isinstance(x, torch.Tensor) or x.dim() < 1:
            raise TypeError(f"x must be a tensor (..., D), got {type(x).__name__}")
        flat = x.detach().double().reshape(-1, x.shape[-1])
        if mask is not None:
            if mask.shape != x.shape[:-1]:
                raise ValueError(f"mask must have shape {tuple(x.shape[:-1])}, got {tuple(mask.shape)}")
            flat = flat[mask.reshape(-1).bool()]
        if flat.shape[0] == 0:
            raise ValueError("NormStats.fit got no frames (empty data or an all-False mask)")
        mean = flat.mean(0)
        std = flat.std(0, unbiased=False).clamp_min(floor)
        return cls(mean.cpu(), std.cpu(), floor)

    def _args(self, x: torch.Tensor):
        _check_dim(x, self.dim, "features")
        return self.mean.to(x.device, x.dtype), self.std.to(x.device, x.dtype)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """(..., D) -> normalised (..., D)."""
        mean, std = self._args(x)
        return (x - mean) / std

    def invert(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised (..., D) -> features (..., D)."""
        mean, std = self._args(x)
        return x * std + mean

    def to_dict(self) -> dict:
        """Plain (JSON-safe) dict: {"version", "floor", "mean": [...], "std": [...]}."""
        return {"version": self.version, "floor": float(self.floor), "mean": self.mean.tolist(),
                "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> "NormStats":
        """Inverse of ``to_dict``; unknown keys or another version are errors."""
        allowed = {"version", "floor", "mean", "std"}
        unknown = set(d) - allowed
        if unknown:
            raise ValueError(f"NormStats dict has unknown keys {sorted(unknown)}; expected {sorted(allowed)}")
        if d.get("version", 1) != 1:
            raise ValueError(f"NormStats version {d['version']} is not supported by this beingh0 (knows 1)")
        return cls(d["mean"], d["std"], float(d.get("floor", 1e-3)), 1)
