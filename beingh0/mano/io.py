"""Loading and saving hand models without running anyone's code.

Official ``MANO_RIGHT.pkl`` / ``MANO_LEFT.pkl`` pickle chumpy objects (and scipy sparse matrices).
chumpy does not import on Python >= 3.11, and unpickling runs arbitrary code. ``load_mano_pickle``
uses a restricted unpickler: only numpy array machinery and scipy sparse matrices may be built,
chumpy ``Ch`` objects are turned into plain arrays, and any other global is refused with
``UnsafePickleError`` *before* it is looked up, so nothing a hostile file names ever runs.

The native format is ``.npz`` (``allow_pickle=False``) or ``.safetensors``, written by
``save_model`` / ``beingh0 mano convert``.
"""
from __future__ import annotations

import io
import json
import pickle
from pathlib import Path

import numpy as np

from ..core.constants import NUM_JOINTS, PARENTS

REQUIRED_KEYS = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f",
                 "hands_components", "hands_mean")


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle asked for something other than plain arrays."""


class _ChumpyStub:
    """Stands in for chumpy.Ch / chumpy.reordering.* while unpickling: keeps only the array."""

    def __init__(self, *args, **kwargs):
        self._state = None

    def __setstate__(self, state):
        self._state = state

    def to_array(self) -> np.ndarray:
        st = self._state
        if isinstance(st, dict):
            for key in ("x", "a", "r"):
                if key in st and isinstance(st[key], np.ndarray):
                    return np.asarray(st[key])
                if key in st and isinstance(st[key], _ChumpyStub):
                    return st[key].to_array()
        raise UnsafePickleError("a chumpy object in the pickle holds no plain array ('x'); this file is not a MANO model")


def _sparse_class(name: str):
    import scipy.sparse as sp  # only needed for real MANO files (J_regressor is csc_matrix)

    return getattr(sp, name)


_NUMPY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
}
_SPARSE = {"csc_matrix", "csr_matrix", "coo_matrix", "csc_array", "csr_array", "coo_array"}


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """Stands in for ``_codecs.encode``, which Python 3 protocol-2 pickles use for bytes: latin-1 only."""
    if encoding.lower().replace("-", "").replace("_", "") not in ("latin1", "iso88591") or not isinstance(text, str):
        raise UnsafePickleError(f"refusing _codecs.encode with encoding {encoding!r} in a model pickle")
    return text.encode("latin1")


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) == ("_codecs", "encode"):
            return _latin1_encode
        if (module, name) in _NUMPY_GLOBALS:
            mod = __import__(module, fromlist=[name])
            return getattr(mod, name)
        if module.startswith("scipy.sparse") and name in _SPARSE:
            return _sparse_class(name)
        if module.split(".")[0] == "chumpy":
            return _ChumpyStub
        raise UnsafePickleError(
            f"refusing to load global {module}.{name} from the pickle: a MANO model file holds only numpy/scipy "
            "arrays (and chumpy objects). The file may be malicious; convert a trusted copy with `beingh0 mano convert`."
        )


def _to_plain(obj):
    if isinstance(obj, _ChumpyStub):
        return obj.to_array()
    if hasattr(obj, "toarray") and type(obj).__module__.startswith("scipy.sparse"):
        return obj.toarray()
    return obj


def load_mano_pickle(path) -> dict:
    """Read an official MANO pickle (or one in its layout) safely; returns plain numpy arrays."""
    path = Path(path)
    data = path.read_bytes()
    try:
        raw = _RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()
    except UnsafePickleError:
        raise
    except Exception as e:  # truncated / not a pickle
        raise ValueError(f"{path}: not a readable MANO pickle ({type(e).__name__}: {e})") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: a MANO pickle holds a dict, this one holds {type(raw).__name__}")
    return {k: _to_plain(v) for k, v in raw.items()}


def validate_model(arrays: dict, source: str = "model") -> dict:
    """Check keys, shapes and the kinematic tree; return float64/int64 numpy arrays."""
    missing = [k for k in REQUIRED_KEYS if k not in arrays]
    if missing:
        raise ValueError(f"{source}: missing keys {missing}; a MANO model needs {list(REQUIRED_KEYS)}")
    out = {}
    for k in REQUIRED_KEYS:
        a = np.asarray(arrays[k])
        if a.dtype == object:
            raise ValueError(f"{source}: {k} is not a numeric array")
        out[k] = a.astype(np.int64 if k in ("kintree_table", "f") else np.float64)
    V = out["v_template"].shape[0]
    expect = {"v_template": (V, 3), "J_regressor": (NUM_JOINTS, V), "weights": (V, NUM_JOINTS),
              "posedirs": (V, 3, 135), "kintree_table": (2, NUM_JOINTS), "hands_components": (45, 45), "hands_mean": (45,)}
    for k, shp in expect.items():
        if out[k].shape != shp:
            raise ValueError(f"{source}: {k} has shape {out[k].shape}, expected {shp}")
    sd = out["shapedirs"]
    if sd.ndim != 3 or sd.shape[:2] != (V, 3):
        raise ValueError(f"{source}: shapedirs has shape {sd.shape}, expected ({V}, 3, S)")
    f = out["f"]
    if f.ndim != 2 or f.shape[1] != 3 or f.min() < 0 or f.max() >= V:
        raise ValueError(f"{source}: faces must be (F, 3) vertex ids in [0, {V})")
    parents = out["kintree_table"][0].copy()
    parents[0] = -1
    if tuple(int(p) for p in parents) != PARENTS:
        raise ValueError(f"{source}: kinematic tree {parents.tolist()} is not MANO's {list(PARENTS)}")
    for k, a in out.items():
        if not np.isfinite(a).all():
            raise ValueError(f"{source}: {k} contains NaN or inf")
    return out


def save_model(arrays: dict, path, meta: dict | None = None) -> Path:
    """Write the native format: ``.npz`` (no pickles) or ``.safetensors``. ``meta`` is stored as JSON."""
    path = Path(path)
    arrays = validate_model(arrays, str(path))
    meta_json = json.dumps(meta or {})
    if path.suffix == ".npz":
        np.savez(path, **arrays, __meta__=np.frombuffer(meta_json.encode(), dtype=np.uint8))
    elif path.suffix == ".safetensors":
        from safetensors.numpy import save_file

        save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(path), metadata={"beingh0": meta_json})
    else:
        raise ValueError(f"{path}: choose a .npz or .safetensors file name")
    return path


def load_model_file(path) -> tuple[dict, dict]:
    """Load a hand model from .pkl (restricted), .npz or .safetensors: (arrays, meta)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"hand model file {path} does not exist")
    meta: dict = {}
    if path.suffix == ".pkl":
        raw = load_mano_pickle(path)
        for key in ("beingh0_note", "beingh0_version"):
            if key in raw:
                meta[key] = str(raw[key])
        arrays = raw
    elif path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files if k != "__meta__"}
                if "__meta__" in z.files:
                    meta = json.loads(bytes(z["__meta__"]).decode())
        except ValueError as e:
            raise ValueError(f"{path}: not a beingh0 hand model npz ({e})") from None
    elif path.suffix == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="numpy") as f:
                arrays = {k: f.get_tensor(k) for k in f.keys()}
                meta = json.loads((f.metadata() or {}).get("beingh0", "{}"))
        except Exception as e:
            raise ValueError(f"{path}: not a readable safetensors hand model ({e})") from None
    else:
        raise ValueError(f"{path}: unknown hand model format {path.suffix!r}; use .pkl, .npz or .safetensors")
    return validate_model(arrays, str(path)), meta
