"""Safe loading of MANO pickles, native formats, and the hostile-pickle guarantee."""
import os
import pickle
import sys

import numpy as np
import pytest
import torch

from beingh0.mano.io import UnsafePickleError, load_mano_pickle, load_model_file, save_model, validate_model
from beingh0.mano.model import ManoModel
from beingh0.testing import random_mano_arrays


def _write(path, obj, protocol=2):
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    return path


class _Evil:
    def __reduce__(self):  # would run a shell command when unpickled by pickle.load
        return (os.system, (f"touch {self.marker}",))


def test_hostile_pickle_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    evil = _Evil()
    evil.marker = marker
    path = _write(tmp_path / "MANO_RIGHT.pkl", {"v_template": np.zeros((2, 3)), "x": evil})
    with pytest.raises(UnsafePickleError, match=r"refusing to load global (posix|os|nt)\.system"):
        load_mano_pickle(path)
    assert not marker.exists(), "the hostile pickle ran code"
    with pytest.raises(UnsafePickleError):
        ManoModel.from_file(path)
    assert not marker.exists()


@pytest.mark.parametrize("global_name", ["builtins.eval", "subprocess.Popen", "torch.load", "numpy.load"])
def test_other_globals_refused(tmp_path, global_name):
    mod, name = global_name.rsplit(".", 1)
    # hand-assembled protocol-2 pickle: GLOBAL mod name, then STOP (never gets past find_class)
    data = b"\x80\x02c" + mod.encode() + b"\n" + name.encode() + b"\n."
    path = tmp_path / "m.pkl"
    path.write_bytes(data)
    with pytest.raises(UnsafePickleError, match=name):
        load_mano_pickle(path)


class Ch:  # mimics chumpy.ch.Ch's pickled state: the array lives in __dict__['x']
    pass


def test_chumpy_objects_become_arrays(tmp_path):
    arrays = random_mano_arrays(1)
    ch = Ch()
    ch.__dict__["x"] = arrays["v_template"]
    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    sys.modules.setdefault("chumpy", type(sys)("chumpy"))
    sys.modules.setdefault("chumpy.ch", type(sys)("chumpy.ch")).Ch = Ch
    try:
        path = _write(tmp_path / "MANO_RIGHT.pkl", {**arrays, "v_template": ch})
    finally:
        del sys.modules["chumpy.ch"], sys.modules["chumpy"]
    loaded = load_mano_pickle(path)
    np.testing.assert_array_equal(loaded["v_template"], arrays["v_template"])


def test_sparse_regressor_and_left_fix(tmp_path):
    sp = pytest.importorskip("scipy.sparse")
    arrays = random_mano_arrays(2)
    raw = {**arrays, "J_regressor": sp.csc_matrix(arrays["J_regressor"]), "kintree_table": arrays["kintree_table"].astype(np.uint32)}
    raw["kintree_table"][0, 0] = 4294967295
    path = _write(tmp_path / "MANO_LEFT.pkl", raw)
    m = ManoModel.from_file(path)
    assert m.side == "left"
    np.testing.assert_allclose(m.J_regressor.numpy(), arrays["J_regressor"])
    # official left files have the x row of shapedirs negated (smplx issue #48): fixed on load
    np.testing.assert_allclose(m.shapedirs[:, 0].numpy(), -arrays["shapedirs"][:, 0])
    np.testing.assert_allclose(m.shapedirs[:, 1:].numpy(), arrays["shapedirs"][:, 1:])


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_native_round_trip(tmp_path, suffix):
    arrays = random_mano_arrays(3)
    path = save_model(arrays, tmp_path / f"hand{suffix}", {"side": "left", "shapedirs_fixed": True})
    loaded, meta = load_model_file(path)
    assert meta == {"side": "left", "shapedirs_fixed": True}
    for k, v in arrays.items():
        np.testing.assert_allclose(loaded[k], v, err_msg=k)
    m = ManoModel.from_file(path)  # no second flip: the file records the fix
    np.testing.assert_allclose(m.shapedirs.numpy(), arrays["shapedirs"])


def test_malformed_files(tmp_path):
    bad = tmp_path / "MANO_RIGHT.pkl"
    bad.write_bytes(pickle.dumps({"v_template": np.zeros((3, 3))}, protocol=2)[:-5])
    with pytest.raises(ValueError, match="not a readable MANO pickle"):
        load_mano_pickle(bad)
    _write(bad, [1, 2, 3])
    with pytest.raises(ValueError, match="holds a dict"):
        load_mano_pickle(bad)
    arrays = random_mano_arrays(4)
    _write(bad, {k: v for k, v in arrays.items() if k != "posedirs"})
    with pytest.raises(ValueError, match="missing keys.*posedirs"):
        ManoModel.from_file(bad)
    wrong = dict(arrays, weights=arrays["weights"][:, :15])
    with pytest.raises(ValueError, match="weights has shape"):
        validate_model(wrong)
    tree = dict(arrays, kintree_table=np.stack([np.array([-1] + [0] * 15), np.arange(16)]))
    with pytest.raises(ValueError, match="kinematic tree"):
        validate_model(tree)
    nan = dict(arrays, v_template=arrays["v_template"].copy())
    nan["v_template"][3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        validate_model(nan)
    with pytest.raises(FileNotFoundError):
        load_model_file(tmp_path / "nope.pkl")
    (tmp_path / "x.npz").write_bytes(b"garbage")
    with pytest.raises(ValueError):
        load_model_file(tmp_path / "x.npz")
    with pytest.raises(ValueError, match="unknown hand model format"):
        (tmp_path / "x.obj").write_text("v 0 0 0")
        load_model_file(tmp_path / "x.obj")


def test_model_bad_options():
    arrays = random_mano_arrays(5)
    with pytest.raises(ValueError, match="side"):
        ManoModel(arrays, "middle")
    with pytest.raises(ValueError, match="trans_mode"):
        ManoModel(arrays, trans_mode="pelvis")
    m = ManoModel(arrays, use_pca=True, num_pca_comps=6)
    with pytest.raises(ValueError, match="6 PCA coefficients"):
        m(hand_pose=torch.zeros(2, 45))
