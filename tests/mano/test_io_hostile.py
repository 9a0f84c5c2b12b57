"""Crafted and oversized hand-model files: refused with a one-line UserError, never a crash or a huge allocation.

scipy's ``toarray`` trusts a sparse matrix's indices (a crafted ``csc_matrix`` as ``J_regressor``
wrote out of bounds and killed the process with SIGSEGV), so sparse matrices are rebuilt by our
numpy code after a full structure check. The hostile files are loaded in a subprocess: a segfault
there fails the test instead of killing pytest.
"""
import io
import json
import pickle
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest

from beingh0.core.errors import UserError, UserFileError, UserValueError
from beingh0.mano import io as mio
from beingh0.mano.io import UnsafePickleError, load_mano_pickle, load_model_file, save_model, sparse_to_dense
from beingh0.mano.model import ManoModel
from beingh0.testing import random_mano_arrays


class _FakeGlobalPickler(pickle._Pickler):
    """Writes classes carrying ``_fake_global = (module, name)`` as that global, so the tests can pickle
    objects that look like scipy sparse matrices to the loader without scipy (and with any state)."""

    def save_global(self, obj, name=None):
        fake = obj.__dict__.get("_fake_global") if isinstance(obj, type) else None
        if fake is None:
            return super().save_global(obj, name)
        self.write(pickle.GLOBAL + f"{fake[0]}\n{fake[1]}\n".encode())
        self.memoize(obj)


def fake_sparse(name="csc_matrix", module="scipy.sparse._csc", **state):
    cls = type(name, (), {"_fake_global": (module, name)})
    obj = cls.__new__(cls)
    obj.__dict__.update(state)
    return obj


def dumps(obj) -> bytes:
    buf = io.BytesIO()
    _FakeGlobalPickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


def csc_state(rows, cols, indptr, indices, data, **kw):
    return dict(_shape=(rows, cols), maxprint=50, indptr=np.asarray(indptr), indices=np.asarray(indices),
                data=np.asarray(data, dtype=np.float64), **kw)


I32 = np.int32
#: name -> (sparse object used as J_regressor, a fragment of the expected message)
HOSTILE = {
    # the crash: one index far outside a (2, 2) matrix
    "csc_index_50M": (fake_sparse(**csc_state(2, 2, np.array([0, 1, 1], I32), np.array([50_000_000], I32), [1.0])),
                      "outside"),
    "csc_negative_index": (fake_sparse(**csc_state(2, 2, np.array([0, 1, 1], I32), np.array([-3], I32), [1.0])),
                           "outside"),
    "csc_indptr_past_data": (fake_sparse(**csc_state(2, 2, np.array([0, 1, 900_000], I32), np.array([0], I32), [1.0])),
                             "indptr ends at 900000"),
    "csc_indptr_decreasing": (fake_sparse(**csc_state(3, 2, np.array([0, 2, 1], I32), np.array([0, 1], I32), [1.0, 2.0])),
                              "never decrease"),
    "csc_indptr_not_at_zero": (fake_sparse(**csc_state(2, 2, np.array([1, 1, 1], I32), np.array([0], I32), [1.0])),
                               "start at 0"),
    "csc_indptr_length": (fake_sparse(**csc_state(2, 5, np.array([0, 1], I32), np.array([0], I32), [1.0])),
                          "indptr has 2 entries"),
    "csc_float_indices": (fake_sparse(**csc_state(2, 2, np.array([0, 1, 1], I32), np.array([0.0]), [1.0])),
                          "integer"),
    "csc_uint64_indices": (fake_sparse(**csc_state(2, 2, np.array([0, 1, 1], np.uint64),
                                                   np.array([2**64 - 1], np.uint64), [1.0])), "beyond int64"),
    "csc_huge_shape": (fake_sparse(**csc_state(15000, 15000, np.zeros(15001, I32), np.zeros(0, I32), [])),
                       "would densify to 225,000,000 elements"),
    "csc_shape_not_ints": (fake_sparse(**csc_state(2, 2, [0, 0, 0], [], []) | {"_shape": ("a", 2)}), "two integers"),
    "csc_object_data": (fake_sparse(**csc_state(2, 2, np.array([0, 1, 1], I32), np.array([0], I32), [1.0])
                                    | {"data": np.array([None], dtype=object)}), "numeric"),
    "csr_array_bad_index": (fake_sparse("csr_array", "scipy.sparse._csr",
                                        **csc_state(2, 2, np.array([0, 0, 1], I32), np.array([7], I32), [1.0])),
                            "outside"),
    "coo_row_out_of_bounds": (fake_sparse("coo_matrix", "scipy.sparse._coo", _shape=(2, 2), row=np.array([10**9]),
                                          col=np.array([0]), data=np.array([1.0])), "outside"),
    "coo_coords_col_negative": (fake_sparse("coo_array", "scipy.sparse._coo", _shape=(2, 2),
                                            coords=(np.array([0]), np.array([-1])), data=np.array([1.0])), "outside"),
    "coo_length_mismatch": (fake_sparse("coo_matrix", "scipy.sparse._coo", _shape=(2, 2), row=np.array([0, 1]),
                                        col=np.array([0]), data=np.array([1.0, 2.0])), "must match"),
    "sparse_without_state": (fake_sparse(), "not a dict"),
}


def _hostile_files(tmp_path) -> dict:
    arrays = random_mano_arrays(7)
    files = {}
    for name, (sparse, msg) in HOSTILE.items():
        p = tmp_path / f"{name}.pkl"
        p.write_bytes(dumps({**arrays, "J_regressor": sparse}))
        files[name] = (str(p), msg)
    # a sparse matrix "built" by calling the class with arguments (REDUCE), not by its pickled state
    p = tmp_path / "sparse_by_call.pkl"
    p.write_bytes(b"\x80\x02}q\x00X\x0b\x00\x00\x00J_regressorq\x01cscipy.sparse._csc\ncsc_matrix\nK\x05\x85Rs.")
    files["sparse_by_call"] = (str(p), "built by a call")
    # numpy's _reconstruct asked for a 10 GB array (pickle.dumps always writes shape (0,))
    p = tmp_path / "reconstruct_huge.pkl"
    p.write_bytes(b"\x80\x02}X\x01\x00\x00\x00acnumpy._core.multiarray\n_reconstruct\ncnumpy\nndarray\n"
                  b"\x8a\x05\x00\xe4\x0bT\x02\x85C\x01b\x87Rs.")
    files["reconstruct_huge"] = (str(p), "pickled arrays start empty")
    sp = None
    try:
        import scipy.sparse as sp
    except ImportError:
        pass
    if sp is not None:  # the reproduction with real scipy objects
        m = sp.csc_matrix(([1.0], ([0], [0])), shape=(2, 2))
        m.indices[0] = 50_000_000
        c = sp.coo_matrix(([1.0], ([0], [0])), shape=(2, 2))
        c.row[0] = 10**8
        big = sp.csc_matrix((15000, 15000))
        for name, bad in (("scipy_csc_index", m), ("scipy_coo_row", c), ("scipy_huge", big)):
            p = tmp_path / f"{name}.pkl"
            p.write_bytes(pickle.dumps({**arrays, "J_regressor": bad}, protocol=2))
            files[name] = (str(p), "would densify" if name == "scipy_huge" else "outside")
    return files


def _valid_sparse_files(tmp_path) -> dict:
    """A MANO-layout pickle whose J_regressor is a real scipy csc_matrix (as in MANO_RIGHT.pkl), and one
    whose state uses the old 'shape' key and module path (scipy < 1.8). name -> (path, path of the dense J)."""
    arrays = random_mano_arrays(8)
    J = arrays["J_regressor"] * (np.random.default_rng(0).random(arrays["J_regressor"].shape) < 0.1)
    np.save(tmp_path / "J.npy", J)
    files = {}
    try:
        import scipy.sparse as sp

        (tmp_path / "MANO_RIGHT.pkl").write_bytes(pickle.dumps({**arrays, "J_regressor": sp.csc_matrix(J)}, protocol=2))
        files["scipy_csc"] = (str(tmp_path / "MANO_RIGHT.pkl"), str(tmp_path / "J.npy"))
    except ImportError:
        pass
    cols = [np.flatnonzero(J[:, j]) for j in range(J.shape[1])]
    old = fake_sparse("csc_matrix", "scipy.sparse.csc", shape=J.shape, maxprint=50, format="csc",
                      indptr=np.concatenate([[0], np.cumsum([len(c) for c in cols])]).astype(np.int32),
                      indices=np.concatenate(cols).astype(np.int32), data=J.T[J.T != 0])
    (tmp_path / "MANO_LEFT.pkl").write_bytes(dumps({**arrays, "J_regressor": old}))
    files["old_csc"] = (str(tmp_path / "MANO_LEFT.pkl"), str(tmp_path / "J.npy"))
    return files


_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    from beingh0.mano.io import load_mano_pickle
    from beingh0.mano.model import ManoModel
    spec = json.load(open(sys.argv[1]))
    for name, (path, dense) in spec["valid"].items():
        np.testing.assert_array_equal(ManoModel.from_file(path).J_regressor.numpy(), np.load(dense))
    scipy_imported = any(m == "scipy" or m.startswith("scipy.") for m in sys.modules)
    out = {}
    for name, (path, _) in spec["hostile"].items():
        for fn in (load_mano_pickle, ManoModel.from_file):
            try:
                fn(path)
                out[name] = ["no error", "", []]
            except Exception as e:
                out[name] = [type(e).__name__, str(e), [c.__name__ for c in type(e).__mro__]]
    print(json.dumps({"scipy_imported": scipy_imported, "hostile": out}))
""")


def test_pickles_in_a_subprocess(tmp_path):
    """Hostile sparse matrices: a UserError each, no crash. Real and old-style scipy csc_matrix
    J_regressors: loaded exactly, without importing scipy."""
    hostile, valid = _hostile_files(tmp_path), _valid_sparse_files(tmp_path)
    (tmp_path / "files.json").write_text(json.dumps({"hostile": hostile, "valid": valid}))
    r = subprocess.run([sys.executable, "-c", _SCRIPT, str(tmp_path / "files.json")], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, f"the loader crashed or failed (exit {r.returncode}): {r.stderr[-2000:]}"
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert not got["scipy_imported"], "loading a sparse J_regressor imported scipy"
    for name, (_, msg) in hostile.items():
        kind, text, mro = got["hostile"][name]
        assert kind == "UnsafePickleError" and "UserError" in mro, (name, kind, text)
        assert msg in text, (name, text)
        assert "\n" not in text and f"{name}.pkl" in text, (name, text)


def _scipy():
    return pytest.importorskip("scipy.sparse")


@pytest.mark.parametrize("fmt", ["csc", "csr", "coo"])
def test_sparse_to_dense_matches_scipy(fmt):
    """Random matrices with explicit zeros, unsorted and (coo) duplicate entries, from scipy's own pickled state."""
    sp = _scipy()
    rng = np.random.default_rng(3)
    A = rng.normal(size=(16, 40)) * (rng.random((16, 40)) < 0.2)
    if fmt == "coo":
        r, c = np.nonzero(A)
        r, c = np.concatenate([r, r[:5]]), np.concatenate([c, c[:5]])   # duplicates are summed
        m = sp.coo_matrix((np.concatenate([A[np.nonzero(A)], np.ones(5)]), (r, c)), shape=A.shape)
    else:
        m = getattr(sp, f"{fmt}_matrix")(A)
        m.has_sorted_indices = False
    state = pickle.loads(pickle.dumps(m.__reduce_ex__(2)[2]))
    np.testing.assert_array_equal(sparse_to_dense(fmt, state), m.toarray())


def _npz_with_header(path, key, shape, descr="<f8", payload=b"\0" * 64):
    with zipfile.ZipFile(path, "w") as z, z.open(f"{key}.npy", "w") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": descr, "fortran_order": False, "shape": shape})
        f.write(payload)


def test_npz_declared_sizes_are_checked_before_reading(tmp_path):
    # a zip member whose header claims 2.2 GB of float64 (only 64 bytes follow): refused from the header
    _npz_with_header(tmp_path / "claim.npz", "posedirs", (16600, 16600))
    with pytest.raises(UserValueError, match=r"claim\.npz: posedirs declares shape \(16600, 16600\).*elements"):
        load_model_file(tmp_path / "claim.npz")
    # a real compressed bomb: 40 MB of zeros in a ~40 KB zip
    np.savez_compressed(tmp_path / "bomb.npz", v_template=np.zeros((5_000_000, 1)))
    assert (tmp_path / "bomb.npz").stat().st_size < 100_000
    with pytest.raises(UserValueError, match="v_template declares shape"):
        load_model_file(tmp_path / "bomb.npz")
    # sizes no hand model has: 20000 vertices
    _npz_with_header(tmp_path / "verts.npz", "v_template", (20000, 3))
    with pytest.raises(UserValueError, match=r"v_template has shape \(20000, 3\), expected \('V', 3\) with V <= 10,000"):
        load_model_file(tmp_path / "verts.npz")
    _npz_with_header(tmp_path / "obj.npz", "f", (3,), descr="|O")
    with pytest.raises(UserValueError, match="pickled objects"):
        load_model_file(tmp_path / "obj.npz")
    with zipfile.ZipFile(tmp_path / "many.npz", "w") as z:
        for i in range(mio.MAX_MODEL_ARRAYS + 1):
            z.writestr(f"a{i}.npy", b"")
    with pytest.raises(UserValueError, match="arrays; a hand model has about 10"):
        load_model_file(tmp_path / "many.npz")


def test_sparse_in_pickle_budget(tmp_path, monkeypatch):
    """Many sparse matrices, each under the per-array cap, may not add up past the total cap."""
    monkeypatch.setattr(mio, "MAX_MODEL_BYTES", 1 << 20)
    s = fake_sparse(**csc_state(300, 300, np.zeros(301, I32), np.zeros(0, I32), []))   # 0.7 MB dense each
    (tmp_path / "m.pkl").write_bytes(dumps({"a": s, "b": s}))
    with pytest.raises(UnsafePickleError, match="exceed what any hand model holds"):
        load_mano_pickle(tmp_path / "m.pkl")


def test_broken_model_files_are_user_errors(tmp_path):
    arrays = random_mano_arrays(9)
    good = save_model(arrays, tmp_path / "hand.npz", {"side": "right"})
    data = good.read_bytes()
    (tmp_path / "trunc.npz").write_bytes(data[: len(data) // 2])           # BadZipFile before
    (tmp_path / "empty.npz").write_bytes(b"")
    (tmp_path / "trunc.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{")
    for name in ("trunc.npz", "empty.npz", "trunc.safetensors"):
        with pytest.raises(UserValueError, match=rf"{name}: not a readable beingh0 hand model .*beingh0 mano convert") as e:
            ManoModel.from_file(tmp_path / name)
        assert "\n" not in str(e.value)
    with pytest.raises(UserFileError, match="is a folder"):
        ManoModel.from_file(tmp_path)
    (tmp_path / "d.pkl").mkdir()
    with pytest.raises(UserFileError, match="is a folder"):
        load_model_file(tmp_path / "d.pkl")
    with pytest.raises(UserFileError, match="does not exist"):
        ManoModel.from_file(tmp_path / "MANO_RIGHT.pkl")
    with pytest.raises(UserValueError, match="choose a .npz or .safetensors"):
        save_model(arrays, tmp_path / "x.pkl")
    assert issubclass(UnsafePickleError, UserError) and issubclass(UnsafePickleError, pickle.UnpicklingError)
