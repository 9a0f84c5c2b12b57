"""Loading and saving hand models without running anyone's code, and without allocating what no hand model needs.

Official ``MANO_RIGHT.pkl`` / ``MANO_LEFT.pkl`` pickle chumpy objects (and scipy sparse matrices).
chumpy does not import on Python >= 3.11, and unpickling runs arbitrary code. ``load_mano_pickle``
uses a restricted unpickler: only numpy array machinery may be built; chumpy ``Ch`` objects are
turned into plain arrays; scipy sparse matrices are kept as their pickled state and densified by
numpy code after a full structure check (``sparse_to_dense``: scipy's own ``toarray`` trusts the
indices and writes out of bounds on a crafted file); any other global is refused with
``UnsafePickleError`` *before* it is looked up, so nothing a hostile file names ever runs.

Sizes are capped before anything is allocated (``MAX_VERTICES``, ``MAX_ARRAY_ELEMENTS``,
``MAX_MODEL_BYTES``): a file's declared shapes (sparse shapes, ``.npz`` member headers,
``.safetensors`` headers) are checked first, so a 1 KB pickle or a small zip cannot ask for gigabytes.

The native format is ``.npz`` (``allow_pickle=False``) or ``.safetensors``, written by
``save_model`` / ``beingh0 mano convert``. Every problem with a user's file is a ``UserError``
(``UserValueError`` / ``UserFileError`` / ``UnsafePickleError``) naming the file.
"""
from __future__ import annotations

import io
import json
import math
import operator
import pickle
import zipfile
from pathlib import Path

import numpy as np

from ..core.constants import NUM_JOINTS, PARENTS
from ..core.errors import UserError, UserFileError, UserValueError

REQUIRED_KEYS = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f",
                 "hands_components", "hands_mean")

# -- size caps: sizes no hand model has are refused before anything is allocated ----------------
#: Most vertices a hand model may have (MANO: 778).
MAX_VERTICES = 10_000
#: Most faces (MANO: 1538).
MAX_FACES = 4 * MAX_VERTICES
#: Most shape directions (MANO: 10).
MAX_SHAPE_COMPONENTS = 300
#: Most elements of any one array in a model file (posedirs of MAX_VERTICES vertices: 4.05 M).
MAX_ARRAY_ELEMENTS = 1 << 22
#: Largest model file on disk, and most bytes all its arrays may decode to (MANO_RIGHT.pkl: 3.8 MB).
MAX_MODEL_BYTES = 128 << 20
#: Most arrays in a .npz / .safetensors model file (MANO has 9 required ones and ~10 extras).
MAX_MODEL_ARRAYS = 64

#: The shape of each required array; "V" vertices, "S" shape directions, "F" faces.
MODEL_SHAPES = {"v_template": ("V", 3), "shapedirs": ("V", 3, "S"), "posedirs": ("V", 3, 135),
                "J_regressor": (NUM_JOINTS, "V"), "weights": ("V", NUM_JOINTS), "kintree_table": (2, NUM_JOINTS),
                "f": ("F", 3), "hands_components": (45, 45), "hands_mean": (45,)}
_SYMBOL_MAX = {"V": MAX_VERTICES, "S": MAX_SHAPE_COMPONENTS, "F": MAX_FACES}
_CONVERT_HINT = "re-create it with `beingh0 mano convert MANO_RIGHT.pkl hand.npz` from a trusted MANO file"


class UnsafePickleError(UserError, pickle.UnpicklingError):
    """A pickle asked for something other than plain arrays (or holds a malformed sparse matrix)."""


def _check_declared(key: str, shape, itemsize: int, source: str) -> int:
    """Check an array's declared shape before it is read; returns its size in bytes."""
    try:
        shape = tuple(operator.index(d) for d in shape)
    except TypeError:
        raise UserValueError(f"{source}: {key} declares a non-integer shape {shape!r}; {_CONVERT_HINT}") from None
    if any(d < 0 for d in shape):
        raise UserValueError(f"{source}: {key} declares a negative shape {shape}; {_CONVERT_HINT}")
    n = math.prod(shape)
    if n > MAX_ARRAY_ELEMENTS:
        raise UserValueError(f"{source}: {key} declares shape {shape} ({n:,} elements); no hand model has arrays over "
                             f"{MAX_ARRAY_ELEMENTS:,} elements (MANO: 778 vertices, 16 joints); {_CONVERT_HINT}")
    want = MODEL_SHAPES.get(key)
    if want is not None:
        ok = len(shape) == len(want) and all(d == w if isinstance(w, int) else d <= _SYMBOL_MAX[w]
                                             for d, w in zip(shape, want))
        if not ok:
            lim = ", ".join(f"{s} <= {_SYMBOL_MAX[s]:,}" for s in sorted({w for w in want if isinstance(w, str)}))
            raise UserValueError(f"{source}: {key} has shape {shape}, expected {tuple(want)}"
                                 + (f" with {lim}" if lim else "") + f"; {_CONVERT_HINT}")
    return n * int(itemsize)


def _check_file_size(path: Path, what: str) -> None:
    if path.is_dir():
        raise UserFileError(f"{path} is a folder; pass the hand-model file itself (.pkl, .npz or .safetensors), or "
                            "the folder to beingh0.mano.hand_model(side, folder)")
    if not path.exists():
        raise UserFileError(f"hand model file {path} does not exist; pass a MANO .pkl/.npz/.safetensors file")
    size = path.stat().st_size
    if size > MAX_MODEL_BYTES:
        raise UserValueError(f"{path}: {size / 2**20:.0f} MiB is larger than any {what} "
                             f"(limit {MAX_MODEL_BYTES >> 20} MiB; MANO_RIGHT.pkl is 3.8 MB); is this the right file?")


# -- the restricted unpickler ----------------------------------------------------------------------
class _ChumpyStub:
    """Stands in for chumpy.Ch / chumpy.reordering.* while unpickling: keeps only the array."""

    def __init__(self, *args, **kwargs):
        self._state = None

    def __setstate__(self, state):
        self._state = state

    def to_array(self):
        st = getattr(self, "_state", None)
        if isinstance(st, dict):
            for key in ("x", "a", "r"):
                if key in st and isinstance(st[key], (np.ndarray, _SparseStub)):
                    return st[key]
                if key in st and isinstance(st[key], _ChumpyStub) and st[key] is not self:
                    return st[key].to_array()
        raise UnsafePickleError("a chumpy object in the pickle holds no plain array ('x'); this file is not a MANO model")


class _SparseStub:
    """Stands in for a scipy.sparse matrix while unpickling: keeps the pickled state (a dict of
    plain arrays), which :func:`sparse_to_dense` validates and densifies with numpy. scipy is never
    imported, and none of its (unchecked) C++ runs on a file's indices."""

    fmt = ""

    def __init__(self, *args, **kwargs):
        if args or kwargs:
            raise UnsafePickleError(f"refusing a {self.fmt} sparse matrix built by a call in the pickle; scipy pickles "
                                    "hold their state as a dict")
        self._state = None

    def __setstate__(self, state):
        self._state = state


_SPARSE_STUBS = {fmt: type(f"_{fmt.capitalize()}Stub", (_SparseStub,), {"fmt": fmt}) for fmt in ("csc", "csr", "coo")}


def _bad_sparse(what: str, msg: str) -> UnsafePickleError:
    return UnsafePickleError(f"{what}: malformed sparse matrix ({msg}); the file is corrupt or hostile, {_CONVERT_HINT}")


def _vector(state: dict, key: str, kinds: str, what: str) -> np.ndarray:
    a = state.get(key)
    if not isinstance(a, np.ndarray) or a.ndim != 1 or a.dtype.kind not in kinds or a.dtype.hasobject:
        desc = f"{a.dtype} array of shape {a.shape}" if isinstance(a, np.ndarray) else type(a).__name__
        raise _bad_sparse(what, f"{key!r} must be a 1-D {'integer' if kinds == 'iu' else 'numeric'} array, got {desc}")
    return a


def _indices(state: dict, key: str, what: str) -> np.ndarray:
    a = _vector(state, key, "iu", what)
    if a.dtype.kind == "u" and a.size and int(a.max()) > np.iinfo(np.int64).max:
        raise _bad_sparse(what, f"{key!r} holds indices beyond int64")
    return a.astype(np.int64)


def sparse_to_dense(fmt: str, state, what: str = "sparse matrix") -> np.ndarray:
    """A pickled scipy sparse matrix (format ``csc``/``csr``/``coo`` and its pickled ``__dict__``)
    -> a dense float64 array, in numpy only, after checking its whole structure: shape (two ints,
    at most :data:`MAX_ARRAY_ELEMENTS` elements), index dtypes, ``indptr`` (length, starts at 0,
    non-decreasing, ends at nnz <= len(indices), len(data)), every index within the shape.
    Duplicate entries are summed as scipy does. Raises :class:`UnsafePickleError`."""
    if fmt not in _SPARSE_STUBS:
        raise ValueError(f"unknown sparse format {fmt!r}")
    if not isinstance(state, dict):
        raise _bad_sparse(what, f"its state is a {type(state).__name__}, not a dict")
    shape = state.get("_shape", state.get("shape"))
    try:
        rows, cols = (operator.index(d) for d in shape)
    except (TypeError, ValueError):
        raise _bad_sparse(what, f"shape {shape!r} is not two integers") from None
    if rows < 0 or cols < 0:
        raise _bad_sparse(what, f"negative shape {(rows, cols)}")
    if rows * cols > MAX_ARRAY_ELEMENTS:
        raise _bad_sparse(what, f"shape {(rows, cols)} would densify to {rows * cols:,} elements, more than any hand "
                                f"model array ({MAX_ARRAY_ELEMENTS:,}; MANO's J_regressor is (16, 778))")
    data = _vector(state, "data", "biuf", what)
    if fmt in ("csc", "csr"):
        indptr, indices = _indices(state, "indptr", what), _indices(state, "indices", what)
        major, minor = (cols, rows) if fmt == "csc" else (rows, cols)
        if indptr.size != major + 1:
            raise _bad_sparse(what, f"indptr has {indptr.size} entries, a {fmt} matrix of shape {(rows, cols)} has "
                                    f"{major + 1}")
        counts = np.diff(indptr)
        if indptr[0] != 0 or (counts < 0).any():
            raise _bad_sparse(what, "indptr does not start at 0 and never decrease")
        nnz = int(indptr[-1])
        if nnz > indices.size or nnz > data.size:
            raise _bad_sparse(what, f"indptr ends at {nnz} but there are {indices.size} indices and {data.size} values")
        minor_idx = indices[:nnz]
        if nnz and (minor_idx.min() < 0 or minor_idx.max() >= minor):
            raise _bad_sparse(what, f"an index lies outside [0, {minor}) (shape {(rows, cols)})")
        major_idx = np.repeat(np.arange(major, dtype=np.int64), counts)
        r, c = (minor_idx, major_idx) if fmt == "csc" else (major_idx, minor_idx)
        vals = data[:nnz]
    else:
        if "coords" in state:
            coords = state["coords"]
            if not isinstance(coords, (tuple, list)) or len(coords) != 2:
                raise _bad_sparse(what, "coords must be a (row, col) pair of arrays")
            state = {"row": coords[0], "col": coords[1]}
        r, c = _indices(state, "row", what), _indices(state, "col", what)
        if not r.size == c.size == data.size:
            raise _bad_sparse(what, f"row, col and data have {r.size}, {c.size} and {data.size} entries; they must match")
        if r.size and (r.min() < 0 or r.max() >= rows or c.min() < 0 or c.max() >= cols):
            raise _bad_sparse(what, f"a (row, col) entry lies outside the shape {(rows, cols)}")
        vals = data
    out = np.zeros((rows, cols), dtype=np.float64)
    np.add.at(out, (r, c), vals.astype(np.float64))
    return out


def _reconstruct_checked(subtype, shape, dtype):
    """numpy's ``_reconstruct`` (how a pickled array starts: an empty (0,) array that ``__setstate__``
    then fills from the pickle's bytes), refusing what pickle.dumps never writes: another subtype or
    a large shape, which numpy would allocate before any check."""
    if subtype is not np.ndarray:
        raise UnsafePickleError(f"refusing numpy _reconstruct of {subtype!r}: model arrays are plain numpy.ndarray")
    try:
        n = math.prod(operator.index(d) for d in (shape if isinstance(shape, tuple) else (shape,)))
    except TypeError:
        raise UnsafePickleError(f"refusing numpy _reconstruct with shape {shape!r}") from None
    if n > 1:
        raise UnsafePickleError(f"refusing numpy _reconstruct with shape {shape!r}: pickled arrays start empty, "
                                "their data follows in the pickle")
    return _NP_RECONSTRUCT(subtype, shape, dtype)


_NP_RECONSTRUCT = np.empty(0).__reduce__()[0]   # numpy's own _reconstruct (numpy.core or numpy._core)


_NUMPY_GLOBALS = {
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
}
_SPARSE = {"csc_matrix", "csr_matrix", "coo_matrix", "csc_array", "csr_array", "coo_array"}


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """Stands in for ``_codecs.encode``, which Python 3 protocol-2 pickles use for bytes: latin-1 only."""
    if not isinstance(encoding, str) or encoding.lower().replace("-", "").replace("_", "") not in ("latin1", "iso88591") \
            or not isinstance(text, str):
        raise UnsafePickleError(f"refusing _codecs.encode with encoding {encoding!r} in a model pickle")
    return text.encode("latin1")


def _empty_bytes(*args):
    """Stands in for ``bytes``, which protocol-2 pickles call with no argument for b'' (an empty array's data)."""
    if args:
        raise UnsafePickleError("refusing bytes(...) with arguments in a model pickle")
    return b""


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) == ("_codecs", "encode"):
            return _latin1_encode
        if (module, name) in (("builtins", "bytes"), ("__builtin__", "bytes")):
            return _empty_bytes
        if (module, name) in (("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct")):
            return _reconstruct_checked
        if (module, name) in _NUMPY_GLOBALS:
            mod = __import__(module, fromlist=[name])
            return getattr(mod, name)
        if module.split(".")[:2] == ["scipy", "sparse"] and name in _SPARSE:
            return _SPARSE_STUBS[name[:3]]
        if module.split(".")[0] == "chumpy":
            return _ChumpyStub
        raise UnsafePickleError(
            f"refusing to load global {module}.{name} from the pickle: a MANO model file holds only numpy/scipy "
            "arrays (and chumpy objects). The file may be malicious; convert a trusted copy with `beingh0 mano convert`."
        )


def _to_plain(obj, what: str, budget: list):
    if isinstance(obj, _ChumpyStub):
        obj = obj.to_array()
    if isinstance(obj, _SparseStub):
        obj = sparse_to_dense(obj.fmt, getattr(obj, "_state", None), what)
    if isinstance(obj, np.ndarray):
        budget[0] += obj.nbytes
        if obj.size > MAX_ARRAY_ELEMENTS or budget[0] > MAX_MODEL_BYTES:
            raise UnsafePickleError(f"{what}: the pickle's arrays exceed what any hand model holds "
                                    f"({MAX_ARRAY_ELEMENTS:,} elements per array, {MAX_MODEL_BYTES >> 20} MiB in all)")
    return obj


def load_mano_pickle(path) -> dict:
    """Read an official MANO pickle (or one in its layout) safely; returns plain numpy arrays.

    Sparse matrices (MANO's ``J_regressor`` is a scipy ``csc_matrix``) are rebuilt from their pickled
    state by :func:`sparse_to_dense` after a full structure check: scipy is not needed and not imported.
    """
    path = Path(path)
    _check_file_size(path, "MANO pickle")
    data = path.read_bytes()
    try:
        raw = _RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()
    except UnsafePickleError as e:
        raise UnsafePickleError(f"{path}: {e}") from None
    except Exception as e:  # truncated / not a pickle
        raise UserValueError(f"{path}: not a readable MANO pickle ({type(e).__name__}: {e}); pass MANO_RIGHT.pkl / "
                             "MANO_LEFT.pkl as downloaded, or a .npz/.safetensors from `beingh0 mano convert`") from None
    if not isinstance(raw, dict):
        raise UserValueError(f"{path}: a MANO pickle holds a dict, this one holds {type(raw).__name__}; "
                             "pass MANO_RIGHT.pkl / MANO_LEFT.pkl")
    budget = [0]
    return {k: _to_plain(v, f"{path}: {k}", budget) for k, v in raw.items()}


def validate_model(arrays: dict, source: str = "model") -> dict:
    """Check keys, shapes (and their caps) and the kinematic tree; return float64/int64 numpy arrays."""
    missing = [k for k in REQUIRED_KEYS if k not in arrays]
    if missing:
        raise UserValueError(f"{source}: missing keys {missing}; a MANO model needs {list(REQUIRED_KEYS)}")
    out = {}
    for k in REQUIRED_KEYS:
        a = np.asarray(arrays[k])
        if a.dtype.kind not in "biuf":
            raise UserValueError(f"{source}: {k} is not a numeric array (dtype {a.dtype}); {_CONVERT_HINT}")
        _check_declared(k, a.shape, a.dtype.itemsize, source)
        out[k] = a.astype(np.int64 if k in ("kintree_table", "f") else np.float64)
    V = out["v_template"].shape[0]
    expect = {"v_template": (V, 3), "J_regressor": (NUM_JOINTS, V), "weights": (V, NUM_JOINTS),
              "posedirs": (V, 3, 135), "kintree_table": (2, NUM_JOINTS), "hands_components": (45, 45), "hands_mean": (45,)}
    for k, shp in expect.items():
        if out[k].shape != shp:
            raise UserValueError(f"{source}: {k} has shape {out[k].shape}, expected {shp}")
    sd = out["shapedirs"]
    if sd.ndim != 3 or sd.shape[:2] != (V, 3):
        raise UserValueError(f"{source}: shapedirs has shape {sd.shape}, expected ({V}, 3, S)")
    f = out["f"]
    if f.ndim != 2 or f.shape[1] != 3 or f.size == 0 or f.min() < 0 or f.max() >= V:
        raise UserValueError(f"{source}: faces must be (F, 3) vertex ids in [0, {V})")
    parents = out["kintree_table"][0].copy()
    parents[0] = -1
    if tuple(int(p) for p in parents) != PARENTS:
        raise UserValueError(f"{source}: kinematic tree {parents.tolist()} is not MANO's {list(PARENTS)}")
    for k, a in out.items():
        if not np.isfinite(a).all():
            raise UserValueError(f"{source}: {k} contains NaN or inf")
    return out


def save_model(arrays: dict, path, meta: dict | None = None) -> Path:
    """Write the native format: ``.npz`` (no pickles) or ``.safetensors``. ``meta`` is stored as JSON."""
    path = Path(path)
    if path.suffix not in (".npz", ".safetensors"):
        raise UserValueError(f"{path}: choose a .npz or .safetensors file name for the converted hand model")
    if path.is_dir():
        raise UserValueError(f"{path} is a folder; pass a file name ending in .npz or .safetensors")
    arrays = validate_model(arrays, str(path))
    meta_json = json.dumps(meta or {})
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".npz":
        np.savez(path, **arrays, __meta__=np.frombuffer(meta_json.encode(), dtype=np.uint8))
    else:
        from safetensors.numpy import save_file

        save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(path), metadata={"beingh0": meta_json})
    return path


def read_npy_header(path) -> tuple[tuple, np.dtype, int]:
    """(shape, dtype, data bytes present) of a ``.npy`` file, from its header, without reading its data.

    Raises ``ValueError`` / ``EOFError`` / ``OSError`` for a file that is not a ``.npy`` (1.0/2.0);
    callers turn those into a ``UserError`` that says what to pass. Compare ``math.prod(shape) *
    dtype.itemsize`` with the bytes present before ``numpy.load`` allocates the array.
    """
    path = Path(path)
    fmt = np.lib.format
    with open(path, "rb") as f:
        version = fmt.read_magic(f)
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f".npy format version {version} (numpy.save writes 1.0 or 2.0 for plain arrays)")
        shape, _, dtype = fmt.read_array_header_1_0(f) if version == (1, 0) else fmt.read_array_header_2_0(f)
        return tuple(shape), dtype, path.stat().st_size - f.tell()


def _npy_header(f, source: str, key: str) -> tuple[tuple, np.dtype]:
    """(shape, dtype) from the header of a .npy stream, without reading its data."""
    fmt = np.lib.format
    version = fmt.read_magic(f)
    if version == (1, 0):
        shape, _, dtype = fmt.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, _, dtype = fmt.read_array_header_2_0(f)
    else:
        raise UserValueError(f"{source}: {key} is a .npy version {version} array; {_CONVERT_HINT}")
    if dtype.hasobject:
        raise UserValueError(f"{source}: {key} holds pickled objects (dtype {dtype}); {_CONVERT_HINT}")
    return shape, dtype


def _load_npz(path: Path) -> tuple[dict, dict]:
    """A model .npz: every member's declared shape is checked (``_check_declared``) before it is read."""
    source = str(path)
    arrays, meta = {}, {}
    with zipfile.ZipFile(path) as z:
        names = [n for n in z.namelist() if not n.endswith("/")]
        if len(names) > MAX_MODEL_ARRAYS:
            raise UserValueError(f"{source}: {len(names)} arrays; a hand model has about 10 (limit "
                                 f"{MAX_MODEL_ARRAYS}); {_CONVERT_HINT}")
        total = 0
        for name in names:
            key = name[:-4] if name.endswith(".npy") else name
            with z.open(name) as f:
                shape, dtype = _npy_header(f, source, key)
            if key == "__meta__":
                if dtype != np.uint8 or len(shape) != 1 or shape[0] > 1 << 20:
                    raise UserValueError(f"{source}: __meta__ must be up to 1 MiB of JSON bytes; {_CONVERT_HINT}")
            else:
                total += _check_declared(key, shape, dtype.itemsize, source)
                if total > MAX_MODEL_BYTES:
                    raise UserValueError(f"{source}: its arrays decode to more than {MAX_MODEL_BYTES >> 20} MiB, more "
                                         f"than any hand model; {_CONVERT_HINT}")
        for name in names:
            key = name[:-4] if name.endswith(".npy") else name
            with z.open(name) as f:
                a = np.lib.format.read_array(f, allow_pickle=False)
            if key == "__meta__":
                meta = json.loads(bytes(a).decode())
                if not isinstance(meta, dict):
                    raise ValueError("__meta__ is not a JSON object")
            else:
                arrays[key] = a
    return arrays, meta


def _load_safetensors(path: Path) -> tuple[dict, dict]:
    from safetensors import safe_open

    source = str(path)
    with safe_open(str(path), framework="numpy") as f:
        keys = list(f.keys())
        if len(keys) > MAX_MODEL_ARRAYS:
            raise UserValueError(f"{source}: {len(keys)} arrays; a hand model has about 10 (limit "
                                 f"{MAX_MODEL_ARRAYS}); {_CONVERT_HINT}")
        for k in keys:
            _check_declared(k, f.get_slice(k).get_shape(), 1, source)
        arrays = {k: f.get_tensor(k) for k in keys}
        meta = json.loads((f.metadata() or {}).get("beingh0", "{}"))
    if not isinstance(meta, dict):
        raise ValueError("the beingh0 metadata is not a JSON object")
    return arrays, meta


def load_model_file(path) -> tuple[dict, dict]:
    """Load a hand model from .pkl (restricted), .npz or .safetensors: (arrays, meta).

    Raises a ``UserError`` naming the file for anything wrong with it (missing, a folder, too
    large, truncated, not a model, malformed or hostile, wrong shapes).
    """
    path = Path(path)
    if path.suffix not in (".pkl", ".npz", ".safetensors"):
        if path.is_dir():
            _check_file_size(path, "hand model")
        raise UserValueError(f"{path}: unknown hand model format {path.suffix!r}; use .pkl, .npz or .safetensors")
    _check_file_size(path, "hand model")
    meta: dict = {}
    if path.suffix == ".pkl":
        raw = load_mano_pickle(path)
        for key in ("beingh0_note", "beingh0_version"):
            if key in raw:
                meta[key] = str(raw[key])
        arrays = raw
    else:
        kind = "npz" if path.suffix == ".npz" else "safetensors"
        try:
            arrays, meta = _load_npz(path) if kind == "npz" else _load_safetensors(path)
        except UserError:
            raise
        except Exception as e:  # BadZipFile, zlib.error, EOFError, SafetensorError, JSON errors ...
            raise UserValueError(f"{path}: not a readable beingh0 hand model {kind} ({type(e).__name__}: {e}); "
                                 f"{_CONVERT_HINT}") from None
    return validate_model(arrays, str(path)), meta
