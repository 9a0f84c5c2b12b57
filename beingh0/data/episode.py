"""The unified episode: one schema for every UniHand source, and its versioned on-disk form.

An :class:`Episode` is one continuous recording (or synthetic clip) at a fixed frame rate:

* per hand (``"left"`` / ``"right"``) a :class:`HandTrack` of MANO parameters in the Being-H0
  convention (``trans`` = wrist joint in the camera frame, metres; ``hand_pose`` 45 axis-angle in
  MANO joint order with ``flat_hand_mean=True``), a per-frame validity flag and confidence;
* a :class:`CameraTrack`: per-frame intrinsics ``fx, fy, cx, cy`` in pixels of the image as stored,
  the image size, optional lens distortion (``"radtan"``: k1, k2, p1, p2[, k3] as OpenCV;
  ``"fisheye"``: k1..k4 as ``cv2.fisheye``) and per-frame camera-to-world extrinsics (4x4, OpenCV
  camera axes; identity when the source has no world frame);
* the frames (:class:`Frames`): an embedded mp4 or JPEG sequence, an external video file with
  frame indices (sources whose licence forbids redistribution), or none (motion-only sources);
* text (:class:`TextAnnotations`) at two levels: chunk-level instruction and summary, per-hand
  instructions, and per-second segments with instruction and caption;
* ``source`` and ``license`` tags, free-form JSON ``meta``.

On disk (format ``beingh0.episode`` version :data:`SCHEMA_VERSION`) an episode is a set of
WebDataset-style members sharing one key (the episode id, no dots):

``<key>.episode.json``
    schema name/version, ids, tags, fps, frame count, text, camera scalars, frames descriptor,
    and a manifest of the arrays (name -> shape, dtype).
``<key>.arrays.safetensors``
    every numeric array, named ``hands.<side>.<field>`` and ``camera.<field>``.
``<key>.frames.mp4`` or ``<key>.frames.<i>.jpg``
    embedded frames, when ``frames.kind`` is ``"mp4"`` or ``"jpeg"``.

:func:`save_episode` / :func:`load_episode` write and read one episode as an uncompressed tar of
those members; shards (``beingh0.data.shards``) concatenate many. Reading validates everything
(:meth:`Episode.validate`); a malformed or truncated file raises :class:`EpisodeFormatError`
naming the file and the field, never a crash or silent garbage.
"""
from __future__ import annotations

import io
import json
import math
import re
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..core.errors import UserFileError, UserValueError

SCHEMA_NAME = "beingh0.episode"
SCHEMA_VERSION = 1
SIDES = ("left", "right")
DIST_MODELS = {"radtan": (4, 5), "fisheye": (4,)}
FRAME_KINDS = ("none", "mp4", "jpeg", "external")
_KEY_RE = re.compile(r"^[A-Za-z0-9_\-]+$")
_HAND_FIELDS = ("global_orient", "hand_pose", "betas", "trans", "valid", "confidence")
_ROBOT_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")

#: Plausibility bounds checked on load (cheap, vectorised): values past them are corrupt data (a
#: flipped bit, an unset buffer, millimetres for metres), never a real hand. Axis-angle components
#: in radians, MANO ``trans`` in metres from the camera, shape coefficients in standard deviations.
MAX_ABS_ANGLE = 100.0
MAX_ABS_TRANS_M = 1000.0
MAX_ABS_BETA = 100.0
MAX_FPS = 10000.0


class EpisodeFormatError(UserValueError):
    """A malformed episode: the message names the file (or episode) and the field."""


def _fail(where: str, fld: str, msg: str):
    raise EpisodeFormatError(f"{where}: field '{fld}': {msg}")


@dataclass
class HandTrack:
    """MANO parameters of one hand over ``T`` frames (Being-H0 conventions, float32)."""

    global_orient: np.ndarray  # (T, 3) axis-angle, camera frame
    hand_pose: np.ndarray  # (T, 45) axis-angle, MANO joint order, flat_hand_mean=True
    betas: np.ndarray  # (10,) shape, constant over the episode
    trans: np.ndarray  # (T, 3) wrist joint position in the camera frame, metres
    valid: np.ndarray  # (T,) bool: parameters are meaningful at this frame
    confidence: np.ndarray  # (T,) float32 in [0, 1]

    @classmethod
    def from_params(cls, global_orient, hand_pose, betas, trans, valid=None, confidence=None) -> "HandTrack":
        go = np.asarray(global_orient, np.float32)
        T = go.shape[0] if go.ndim == 2 else 0
        return cls(
            global_orient=go,
            hand_pose=np.asarray(hand_pose, np.float32),
            betas=np.asarray(betas, np.float32),
            trans=np.asarray(trans, np.float32),
            valid=np.ones(T, bool) if valid is None else np.asarray(valid, bool),
            confidence=np.ones(T, np.float32) if confidence is None else np.asarray(confidence, np.float32),
        )

    def validate(self, T: int, where: str, side: str) -> None:
        pre = f"hands.{side}."
        want = {"global_orient": (T, 3), "hand_pose": (T, 45), "betas": (10,), "trans": (T, 3), "valid": (T,), "confidence": (T,)}
        for name, shape in want.items():
            a = getattr(self, name)
            if not isinstance(a, np.ndarray):
                _fail(where, pre + name, f"expected a numpy array, got {type(a).__name__}")
            if a.shape != shape:
                _fail(where, pre + name, f"shape {a.shape}, expected {shape} (T = {T} frames)")
        if self.valid.dtype != np.bool_:
            _fail(where, pre + "valid", f"dtype {self.valid.dtype}, expected bool")
        for name in ("global_orient", "hand_pose", "trans", "confidence"):
            a = getattr(self, name)
            if a.dtype != np.float32:
                _fail(where, pre + name, f"dtype {a.dtype}, expected float32")
            bad = ~np.isfinite(a.reshape(T, -1)).all(axis=1) & self.valid
            if bad.any():
                _fail(where, pre + name, f"non-finite values at valid frames {np.flatnonzero(bad)[:5].tolist()}")
        if self.betas.dtype != np.float32 or not np.isfinite(self.betas).all():
            _fail(where, pre + "betas", "expected 10 finite float32 values")
        if np.abs(self.betas).max(initial=0) > MAX_ABS_BETA:
            _fail(where, pre + "betas", f"|beta| up to {np.abs(self.betas).max():.3g}; plausible shapes lie within "
                  f"+-{MAX_ABS_BETA:g} (corrupt data, or keypoints fitted in millimetres?)")
        for name, lim, unit in (("global_orient", MAX_ABS_ANGLE, "rad"), ("hand_pose", MAX_ABS_ANGLE, "rad"),
                                ("trans", MAX_ABS_TRANS_M, "m")):
            a = np.abs(getattr(self, name)[self.valid])
            if a.size and a.max() > lim:  # NaN compares False: non-finite values are reported above
                _fail(where, pre + name, f"values up to {a.max():.3g} {unit} at valid frames; more than {lim:g} {unit} "
                      "is corrupt data (or a unit mistake)")
        if ((self.confidence < 0) | (self.confidence > 1)).any() and np.isfinite(self.confidence).all():
            _fail(where, pre + "confidence", "values must lie in [0, 1]")


@dataclass
class CameraTrack:
    """Per-frame pinhole camera: intrinsics of the stored image, optional distortion, extrinsics."""

    intrinsics: np.ndarray  # (T, 4) float64: fx, fy, cx, cy in pixels
    width: int
    height: int
    cam_to_world: np.ndarray  # (T, 4, 4) float64, OpenCV camera axes
    distortion: np.ndarray | None = None  # (4,) or (5,) float64
    distortion_model: str | None = None  # "radtan" | "fisheye"

    @classmethod
    def constant(cls, fx, fy, cx, cy, width, height, T, cam_to_world=None, distortion=None, distortion_model=None) -> "CameraTrack":
        K = np.tile(np.array([fx, fy, cx, cy], np.float64), (T, 1))
        E = np.tile(np.eye(4), (T, 1, 1)) if cam_to_world is None else np.asarray(cam_to_world, np.float64)
        d = None if distortion is None else np.asarray(distortion, np.float64)
        return cls(K, int(width), int(height), E, d, distortion_model)

    def K(self, t: int = 0) -> np.ndarray:
        fx, fy, cx, cy = self.intrinsics[t]
        return np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], np.float64)

    def validate(self, T: int, where: str) -> None:
        if not (isinstance(self.width, int) and isinstance(self.height, int) and self.width > 0 and self.height > 0):
            _fail(where, "camera.width/height", f"must be positive integers, got {self.width!r} x {self.height!r}")
        K = self.intrinsics
        if not isinstance(K, np.ndarray) or K.shape != (T, 4):
            _fail(where, "camera.intrinsics", f"shape {getattr(K, 'shape', None)}, expected ({T}, 4) = fx, fy, cx, cy per frame")
        if not np.isfinite(K).all():
            _fail(where, "camera.intrinsics", "contains NaN or inf")
        if (K[:, :2] <= 0).any():
            _fail(where, "camera.intrinsics", "focal lengths fx, fy must be > 0 (pixels)")
        E = self.cam_to_world
        if not isinstance(E, np.ndarray) or E.shape != (T, 4, 4):
            _fail(where, "camera.cam_to_world", f"shape {getattr(E, 'shape', None)}, expected ({T}, 4, 4)")
        if not np.isfinite(E).all():
            _fail(where, "camera.cam_to_world", "contains NaN or inf")
        if T and not np.allclose(E[:, 3], [0, 0, 0, 1], atol=1e-6):
            _fail(where, "camera.cam_to_world", "last row must be 0 0 0 1 (rigid transform)")
        if T:
            R = E[:, :3, :3]
            err = np.abs(R @ np.swapaxes(R, 1, 2) - np.eye(3)).max()
            if err > 1e-3:
                _fail(where, "camera.cam_to_world", f"rotation part is not orthonormal (error {err:.2g})")
        if (self.distortion is None) != (self.distortion_model is None):
            _fail(where, "camera.distortion", "distortion coefficients and distortion_model go together")
        if self.distortion is not None:
            if self.distortion_model not in DIST_MODELS:
                _fail(where, "camera.distortion_model", f"{self.distortion_model!r} is not one of {sorted(DIST_MODELS)}")
            n = DIST_MODELS[self.distortion_model]
            if self.distortion.ndim != 1 or self.distortion.shape[0] not in n or not np.isfinite(self.distortion).all():
                _fail(where, "camera.distortion", f"expected {' or '.join(map(str, n))} finite coefficients for {self.distortion_model}")


@dataclass
class Frames:
    """Where the pixels are. ``indices[t]`` is the video frame shown at episode frame ``t``."""

    kind: str = "none"  # "none" | "mp4" | "jpeg" | "external"
    indices: np.ndarray | None = None  # (T,) int64 for mp4/external, None otherwise
    data: bytes | list[bytes] | None = None  # mp4 bytes, or one JPEG per frame
    path: str | None = None  # external video, relative to the data root given at load time

    def validate(self, T: int, where: str, data: bool = True) -> None:
        if self.kind not in FRAME_KINDS:
            _fail(where, "frames.kind", f"{self.kind!r} is not one of {FRAME_KINDS}")
        if self.kind == "jpeg" and data:
            if not isinstance(self.data, list) or len(self.data) != T:
                _fail(where, "frames.data", f"expected {T} JPEG frames, got {len(self.data) if isinstance(self.data, list) else type(self.data).__name__}")
            for i, b in enumerate(self.data):
                if not isinstance(b, (bytes, bytearray)) or b[:2] != b"\xff\xd8":
                    _fail(where, f"frames.data[{i}]", "not a JPEG image")
        if self.kind in ("mp4", "external"):
            if self.indices is None or self.indices.shape != (T,) or self.indices.dtype != np.int64:
                _fail(where, "frames.indices", f"expected ({T},) int64 video frame indices")
            if T and (self.indices < 0).any():
                _fail(where, "frames.indices", "negative frame index")
        if self.kind == "mp4" and data and not isinstance(self.data, (bytes, bytearray)):
            _fail(where, "frames.data", "expected the mp4 file's bytes")
        if self.kind == "external" and not self.path:
            _fail(where, "frames.path", "external frames need the video path")


@dataclass
class TextSegment:
    """Text for ``[t0, t1)`` seconds; ``hand`` is ``"both"``, ``"left"`` or ``"right"``."""

    t0: float
    t1: float
    instruction: str
    caption: str = ""
    hand: str = "both"


@dataclass
class TextAnnotations:
    instruction: str = ""  # chunk-level (whole episode) instruction
    summary: str = ""  # chunk-level description of what happens
    per_hand: dict[str, str] = field(default_factory=dict)  # side -> instruction for that hand
    segments: list[TextSegment] = field(default_factory=list)  # per-second instructions and captions

    def validate(self, duration: float, where: str) -> None:
        for name in ("instruction", "summary"):
            if not isinstance(getattr(self, name), str):
                _fail(where, f"text.{name}", "must be a string")
        for k, v in self.per_hand.items():
            if k not in SIDES or not isinstance(v, str):
                _fail(where, "text.per_hand", f"keys must be 'left'/'right' with string values, got {k!r}")
        for i, s in enumerate(self.segments):
            f = f"text.segments[{i}]"
            if not (isinstance(s.t0, (int, float)) and isinstance(s.t1, (int, float)) and math.isfinite(s.t0) and math.isfinite(s.t1)):
                _fail(where, f, "t0/t1 must be finite numbers (seconds)")
            if not (0 <= s.t0 < s.t1 <= duration + 1e-6):
                _fail(where, f, f"needs 0 <= t0 < t1 <= duration ({duration:.3f} s), got [{s.t0}, {s.t1})")
            if s.hand not in ("both",) + SIDES:
                _fail(where, f, f"hand must be 'both', 'left' or 'right', got {s.hand!r}")
            if not isinstance(s.instruction, str) or not isinstance(s.caption, str):
                _fail(where, f, "instruction and caption must be strings")


def _check_fps_frames(fps, T, where: str) -> None:
    if isinstance(fps, bool) or not (isinstance(fps, (int, float)) and math.isfinite(fps) and 0 < fps <= MAX_FPS):
        _fail(where, "fps", f"must be a positive number of frames per second (at most {MAX_FPS:g}), got {fps!r}")
    if isinstance(T, bool) or not isinstance(T, int) or T < 1:
        _fail(where, "num_frames", f"must be a positive integer, got {T!r}")


def _is_num(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def validate_header(h: Any, where: str) -> dict:
    """Structure and value check of a parsed ``<key>.episode.json`` (no arrays needed; cheap).

    What the motion loader, ``data stats`` and :meth:`Episode.from_members` read from the header is
    checked here, so a malformed header fails with the file and the field, never a KeyError later.
    """
    if not isinstance(h, dict):
        _fail(where, "episode.json", "top level must be an object")
    if h.get("schema") != SCHEMA_NAME:
        _fail(where, "schema", f"{h.get('schema')!r} is not {SCHEMA_NAME!r}")
    if h.get("version") != SCHEMA_VERSION:
        _fail(where, "version", f"format version {h.get('version')!r}; this beingh0 reads version {SCHEMA_VERSION} "
                                "(upgrade beingh0 or rebuild the data)")
    for name in ("episode_id", "source", "license"):
        if not isinstance(h.get(name), str) or not h[name]:
            _fail(where, name, f"must be a non-empty string, got {h.get(name)!r}")
    _check_fps_frames(h.get("fps"), h.get("num_frames"), where)
    hands = h.get("hands")
    if not isinstance(hands, list) or any(s not in SIDES for s in hands) or len(set(hands)) != len(hands):
        _fail(where, "hands", f"must be a list of distinct 'left'/'right', got {hands!r}")
    cam = h.get("camera")
    if not isinstance(cam, dict):
        _fail(where, "camera", f"must be an object with width and height, got {cam!r}")
    for k in ("width", "height"):
        v = cam.get(k)
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
            _fail(where, f"camera.{k}", f"must be a positive integer (pixels), got {v!r}")
    fr = h.get("frames")
    if not isinstance(fr, dict) or fr.get("kind") not in FRAME_KINDS:
        _fail(where, "frames.kind", f"must be one of {FRAME_KINDS}, got {fr.get('kind') if isinstance(fr, dict) else fr!r}")
    if fr.get("path") is not None and not isinstance(fr["path"], str):
        _fail(where, "frames.path", "must be a string or null")
    t = h.get("text")
    if not isinstance(t, dict):
        _fail(where, "text", f"must be an object with instruction, summary, per_hand and segments, got {t!r}")
    for name in ("instruction", "summary"):
        if not isinstance(t.get(name), str):
            _fail(where, f"text.{name}", f"must be a string, got {t.get(name)!r}")
    ph = t.get("per_hand")
    if not isinstance(ph, dict) or not all(k in SIDES and isinstance(v, str) for k, v in ph.items()):
        _fail(where, "text.per_hand", f"must map 'left'/'right' to strings, got {ph!r}")
    segs = t.get("segments")
    if not isinstance(segs, list):
        _fail(where, "text.segments", f"must be a list, got {segs!r}")
    duration = h["num_frames"] / h["fps"]
    for i, s in enumerate(segs):
        f = f"text.segments[{i}]"
        if not isinstance(s, dict) or set(s) != {"t0", "t1", "instruction", "caption", "hand"}:
            _fail(where, f, f"must be an object with exactly t0, t1, instruction, caption, hand; got {s!r}")
        if not (_is_num(s.get("t0")) and _is_num(s.get("t1")) and 0 <= s["t0"] < s["t1"] <= duration + 1e-6):
            _fail(where, f, f"needs numbers 0 <= t0 < t1 <= duration ({duration:.3f} s), got [{s.get('t0')!r}, {s.get('t1')!r})")
        if s["hand"] not in ("both",) + SIDES:
            _fail(where, f"{f}.hand", f"must be 'both', 'left' or 'right', got {s.get('hand')!r}")
        if not isinstance(s["instruction"], str) or not isinstance(s["caption"], str):
            _fail(where, f, "instruction and caption must be strings")
    if "meta" in h and not isinstance(h["meta"], dict):
        _fail(where, "meta", "must be an object")
    return h


def parse_header(data: bytes, where: str) -> dict:
    """Parse and validate the bytes of a ``<key>.episode.json`` member."""
    try:
        h = json.loads(bytes(data).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise EpisodeFormatError(f"{where}: field 'episode.json': not valid JSON ({e}); the file is corrupt, "
                                 "rebuild the dataset or episode") from None
    return validate_header(h, where)


@dataclass
class Episode:
    episode_id: str
    source: str
    license: str
    fps: float
    num_frames: int
    hands: dict[str, HandTrack]
    camera: CameraTrack
    frames: Frames = field(default_factory=Frames)
    text: TextAnnotations = field(default_factory=TextAnnotations)
    meta: dict[str, Any] = field(default_factory=dict)
    #: robot episodes (LeRobot): per-frame numeric features by name (``"observation.state"``,
    #: ``"action"``...), (T,) or (T, n) float32/float64/int64, stored as ``robot.<name>`` arrays.
    robot: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps

    def validate(self, where: str | None = None, *, frames: bool = True) -> "Episode":
        """Check the whole episode (``frames=False``: not the frame data, which was not read)."""
        where = where or f"episode {self.episode_id!r}"
        if not isinstance(self.episode_id, str) or not _KEY_RE.match(self.episode_id):
            _fail(where, "episode_id", f"{self.episode_id!r} must be non-empty and use only letters, digits, '_' and '-'")
        for name in ("source", "license"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                _fail(where, name, "must be a non-empty string")
        _check_fps_frames(self.fps, self.num_frames, where)
        T = self.num_frames
        if not self.hands and not self.robot:
            _fail(where, "hands", "an episode needs at least one hand track (or robot arrays)")
        for side, h in self.hands.items():
            if side not in SIDES:
                _fail(where, "hands", f"unknown side {side!r}; use 'left' or 'right'")
            h.validate(T, where, side)
        for name, a in self.robot.items():
            f = f"robot.{name}"
            if not isinstance(name, str) or not _ROBOT_RE.match(name):
                _fail(where, "robot", f"feature name {name!r} must use letters, digits, '_', '-' and '.'")
            if not isinstance(a, np.ndarray) or a.ndim not in (1, 2) or a.shape[0] != T:
                _fail(where, f, f"shape {getattr(a, 'shape', None)}, expected ({T},) or ({T}, n)")
            if a.dtype not in (np.float32, np.float64, np.int64):
                _fail(where, f, f"dtype {a.dtype}, expected float32, float64 or int64")
            if a.dtype.kind == "f" and not np.isfinite(a).all():
                _fail(where, f, "contains NaN or inf")
        self.camera.validate(T, where)
        self.frames.validate(T, where, data=frames)
        self.text.validate(self.duration, where)
        try:
            json.dumps(self.meta)
        except (TypeError, ValueError) as e:
            _fail(where, "meta", f"must be JSON-serialisable: {e}")
        return self

    # ----------------------------------------------------------------- (de)serialisation
    def arrays(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for side, h in self.hands.items():
            for name in _HAND_FIELDS:
                a = getattr(h, name)
                out[f"hands.{side}.{name}"] = a.astype(np.uint8) if name == "valid" else a
        out["camera.intrinsics"] = self.camera.intrinsics
        out["camera.cam_to_world"] = self.camera.cam_to_world
        if self.camera.distortion is not None:
            out["camera.distortion"] = self.camera.distortion
        if self.frames.indices is not None:
            out["frames.indices"] = self.frames.indices
        for name, a in self.robot.items():
            out[f"robot.{name}"] = a
        return {k: np.ascontiguousarray(v) for k, v in out.items()}

    def header(self) -> dict[str, Any]:
        arrays = self.arrays()
        fr = self.frames
        return {
            "schema": SCHEMA_NAME,
            "version": SCHEMA_VERSION,
            "episode_id": self.episode_id,
            "source": self.source,
            "license": self.license,
            "fps": float(self.fps),
            "num_frames": int(self.num_frames),
            "hands": sorted(self.hands),
            "camera": {"width": self.camera.width, "height": self.camera.height, "distortion_model": self.camera.distortion_model},
            "frames": {"kind": fr.kind, "path": fr.path, "count": len(fr.data) if fr.kind == "jpeg" else None},
            "text": {
                "instruction": self.text.instruction,
                "summary": self.text.summary,
                "per_hand": dict(self.text.per_hand),
                "segments": [vars(s) for s in self.text.segments],
            },
            "meta": self.meta,
            "arrays": {k: {"shape": list(v.shape), "dtype": str(v.dtype)} for k, v in arrays.items()},
        }

    def to_members(self) -> dict[str, bytes]:
        """The episode as ``{member name: bytes}`` (WebDataset naming ``<key>.<ext>``)."""
        from safetensors.numpy import save

        self.validate()
        k = self.episode_id
        members = {
            f"{k}.episode.json": json.dumps(self.header(), indent=1, sort_keys=True).encode(),
            f"{k}.arrays.safetensors": save(self.arrays()),
        }
        if self.frames.kind == "mp4":
            members[f"{k}.frames.mp4"] = bytes(self.frames.data)
        elif self.frames.kind == "jpeg":
            for i, b in enumerate(self.frames.data):
                members[f"{k}.frames.{i:06d}.jpg"] = bytes(b)
        return members

    @classmethod
    def from_members(cls, members: Mapping[str, bytes], where: str = "<memory>", *, frames: bool = True) -> "Episode":
        """Inverse of :meth:`to_members`; validates everything (``where`` names the file in errors).

        ``frames=False`` reads no frame members (``frames.data`` stays None): for checks and
        motion-only uses of episodes whose pixels are not needed.
        """
        heads = [n for n in members if n.endswith(".episode.json")]
        if len(heads) != 1:
            raise EpisodeFormatError(f"{where}: expected exactly one '<key>.episode.json' member, found {len(heads)}")
        key = heads[0][: -len(".episode.json")]
        h = parse_header(members[heads[0]], where)
        arr_name = f"{key}.arrays.safetensors"
        if arr_name not in members:
            _fail(where, "arrays.safetensors", "member missing (truncated file?)")
        try:
            from safetensors.numpy import load

            arrays = load(bytes(members[arr_name]))
        except Exception as e:  # safetensors raises its own error types for malformed buffers
            raise EpisodeFormatError(f"{where}: field 'arrays.safetensors': unreadable ({type(e).__name__}: {e})") from None
        manifest = h.get("arrays")
        if not isinstance(manifest, dict) or set(manifest) != set(arrays):
            _fail(where, "arrays", f"manifest lists {sorted(manifest) if isinstance(manifest, dict) else manifest!r} but the file holds {sorted(arrays)}")
        for name, spec in manifest.items():
            a = arrays[name]
            if not isinstance(spec, dict) or list(a.shape) != spec.get("shape") or str(a.dtype) != spec.get("dtype"):
                _fail(where, name, f"stored {a.shape} {a.dtype} does not match the manifest {spec}")
        hands = {}
        for side in h["hands"]:
            def get(n, side=side):
                name = f"hands.{side}.{n}"
                if name not in arrays:
                    _fail(where, name, "missing")
                return arrays[name]

            hands[side] = HandTrack(
                get("global_orient"), get("hand_pose"), get("betas"), get("trans"), get("valid").astype(bool), get("confidence")
            )
        cam = h["camera"]
        if "camera.intrinsics" not in arrays or "camera.cam_to_world" not in arrays:
            _fail(where, "camera", "intrinsics / cam_to_world arrays missing")
        camera = CameraTrack(
            arrays["camera.intrinsics"], cam["width"], cam["height"], arrays["camera.cam_to_world"],
            arrays.get("camera.distortion"), cam.get("distortion_model"),
        )
        fr = h["frames"]
        kind = fr["kind"]
        data: Any = None
        if kind == "mp4" and frames:
            if f"{key}.frames.mp4" not in members:
                _fail(where, "frames.mp4", "member missing (truncated file?)")
            data = bytes(members[f"{key}.frames.mp4"])
        elif kind == "jpeg" and frames:
            n = fr.get("count")
            if not isinstance(n, int) or n < 0:
                _fail(where, "frames.count", f"expected a frame count, got {n!r}")
            data = []
            for i in range(n):
                m = f"{key}.frames.{i:06d}.jpg"
                if m not in members:
                    _fail(where, m, "member missing (truncated file?)")
                data.append(bytes(members[m]))
        fr_obj = Frames(kind, arrays.get("frames.indices"), data, fr.get("path"))
        t = h["text"]
        text = TextAnnotations(t["instruction"], t["summary"], dict(t["per_hand"]),
                               [TextSegment(**s) for s in t["segments"]])
        robot = {k[len("robot."):]: v for k, v in arrays.items() if k.startswith("robot.")}
        ep = cls(h["episode_id"], h["source"], h["license"], h["fps"], h["num_frames"], hands, camera, fr_obj, text,
                 h.get("meta", {}), robot)
        if ep.episode_id != key:
            _fail(where, "episode_id", f"{ep.episode_id!r} does not match the member key {key!r}")
        return ep.validate(where, frames=frames)


def save_episode(ep: Episode, path: str | Path) -> Path:
    """Write one episode as an uncompressed tar of its members (atomically: temp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in ep.to_members().items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    tmp.replace(path)
    return path


def read_tar_members(path: str | Path) -> dict[str, bytes]:
    """All regular members of a tar file; errors name the file (truncated, not a tar, links...)."""
    path = Path(path)
    if path.is_dir():
        raise UserFileError(f"{path} is a folder; give an episode .tar file (or use a dataset folder where one is accepted)")
    if not path.is_file():
        raise UserFileError(f"{path}: no such episode/shard file")
    out: dict[str, bytes] = {}
    try:
        with tarfile.open(path, "r:") as tf:
            for m in tf:
                if not m.isreg():
                    raise EpisodeFormatError(f"{path}: member {m.name!r} is not a regular file (links and folders are refused)")
                f = tf.extractfile(m)
                data = f.read() if f is not None else b""
                if len(data) != m.size:
                    raise EpisodeFormatError(f"{path}: member {m.name!r} is truncated")
                out[m.name] = data
    except tarfile.TarError as e:
        raise EpisodeFormatError(f"{path}: not a readable tar file ({e}); the file may be truncated") from None
    return out


def load_episode(path: str | Path) -> Episode:
    """Read and validate an episode written by :func:`save_episode`."""
    return Episode.from_members(read_tar_members(path), where=str(path))
