"""A user's mistakes on the way into ``fit_keypoints`` / ``fit_file`` / ``convert_model``: one-line
UserErrors naming the file and what to pass (wrong unit, wrong side, wrong file). All fast: nothing
here reaches the optimiser."""
from __future__ import annotations

import ast
import importlib.util
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from beingh0.core.errors import UserError, UserFileError, UserValueError
from beingh0.core.rotations import rodrigues
from beingh0.mano.clean import check_metres, hand_length
from beingh0.mano.convert import convert_model, export_embedded
from beingh0.mano.fit import FitConfig, _matrix_to_axis_angle, fit_file, fit_keypoints, load_keypoints_npy
from beingh0.mano.model import ManoModel, mirror_points

BACKEND = None if importlib.util.find_spec("beingh0._C") is not None else "reference"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def right_kp():
    """6 frames of a right hand with flexed fingers (a clear chirality), 40-60 cm in front of the camera."""
    m = ManoModel.embedded("right")
    g = torch.Generator().manual_seed(0)
    hp = torch.zeros(6, 45, dtype=torch.float64)
    hp[:, [2, 5, 11, 14, 20, 23, 29, 32]] = 0.4 + 0.6 * torch.rand(6, 8, generator=g, dtype=torch.float64)
    go = 0.5 * torch.randn(6, 3, generator=g, dtype=torch.float64)
    tr = torch.tensor([0.0, 0.0, 0.5], dtype=torch.float64) + 0.1 * torch.randn(6, 3, generator=g, dtype=torch.float64)
    with torch.no_grad():
        return m.keypoints(None, go, hp, tr, backend=BACKEND).numpy()


def _one_line(e) -> str:
    msg = str(e.value)
    assert isinstance(e.value, UserError) and "\n" not in msg, msg
    return msg


# --- units -------------------------------------------------------------------------------------


def test_hand_length_and_unit_check(right_kp):
    L = hand_length(right_kp)
    assert L == pytest.approx(float(np.median(np.linalg.norm(right_kp[:, 9] - right_kp[:, 0], axis=-1))), rel=1e-12)
    assert 0.07 < L < 0.11 and check_metres(right_kp) == L
    with pytest.raises(UserValueError, match=r"look like millimetres; divide them by 1000 .*length 9\d\.\d") as e:
        check_metres(right_kp * 1000)
    _one_line(e)
    with pytest.raises(UserValueError, match="look like centimetres; divide them by 100"):
        check_metres(right_kp * 100)
    with pytest.raises(UserValueError, match="are not in metres"):
        check_metres(right_kp * 1e5)
    with pytest.raises(UserValueError, match="same point"):
        check_metres(np.zeros((2, 21, 3)))
    assert np.isnan(check_metres(np.full((2, 21, 3), np.nan)))     # nothing to measure: left to later checks


def test_fit_refuses_millimetres(right_kp, tmp_path):
    """The issue's case: mm keypoints gave betas ~1e4 and trans ~65 m with exit 0."""
    with pytest.raises(UserValueError, match="millimetres; divide them by 1000"):
        fit_keypoints(ManoModel.embedded("right"), right_kp * 1000, config=FitConfig(backend=BACKEND))
    np.save(tmp_path / "mm.npy", (right_kp * 1000).astype(np.float32))
    with pytest.raises(UserValueError, match="millimetres") as e:
        fit_file(tmp_path / "mm.npy", tmp_path / "out.npz", verbose=False)
    _one_line(e)
    assert not (tmp_path / "out.npz").exists()


# --- side --------------------------------------------------------------------------------------


def test_left_hand_with_the_right_model_names_the_side(right_kp, tmp_path):
    left_kp = mirror_points(torch.as_tensor(right_kp)).numpy()      # the same motion as a left hand
    with pytest.raises(UserValueError, match=r"rejected 6 of 6 frames as mirrored.*side='left'.*--side left") as e:
        fit_keypoints(ManoModel.embedded("right"), left_kp, config=FitConfig(backend=BACKEND))
    _one_line(e)
    with pytest.raises(UserValueError, match=r"side='right'.*--side right"):
        fit_keypoints(ManoModel.embedded("left"), right_kp, config=FitConfig(backend=BACKEND))
    np.save(tmp_path / "left.npy", left_kp)
    with pytest.raises(UserValueError, match="--side left"):
        fit_file(tmp_path / "left.npy", tmp_path / "out.npz", verbose=False)
    # the left model fits it (no chirality complaint); a minority of mirrored frames is still only dropped
    res = fit_keypoints(ManoModel.embedded("left"), left_kp,
                        config=FitConfig(backend=BACKEND, stage1_iters=2, stage2_iters=2, refine_iters=0))
    assert not res.chirality_flips.any()
    mixed = right_kp.copy()
    mixed[2] = left_kp[2]
    res = fit_keypoints(ManoModel.embedded("right"), mixed,
                        config=FitConfig(backend=BACKEND, stage1_iters=2, stage2_iters=2, refine_iters=0))
    assert res.chirality_flips.nonzero()[0].tolist() == [2]


# --- files -------------------------------------------------------------------------------------


def test_keypoint_file_mistakes_are_one_line_user_errors(right_kp, tmp_path):
    (tmp_path / "empty.npy").write_bytes(b"")
    np.savez(tmp_path / "kp.npz", keypoints=right_kp)
    np.save(tmp_path / "shape.npy", right_kp[:, :20])
    np.save(tmp_path / "full.npy", right_kp)
    data = (tmp_path / "full.npy").read_bytes()
    (tmp_path / "trunc.npy").write_bytes(data[: len(data) - 100])
    (tmp_path / "text.npy").write_text("0.1 0.2 0.3\n")
    np.save(tmp_path / "str.npy", np.full((2, 21, 3), "a"))
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (tmp_path / "dir.npy").mkdir()
    cases = {  # file -> (error class, message fragment)
        "empty.npy": (UserValueError, r"empty\.npy is empty; pass a \.npy of shape \(T, 21, 3\)"),
        "kp.npz": (UserValueError, r"kp\.npz is a \.npz archive \(arrays: keypoints\).*numpy\.load\('kp\.npz'\)\['keypoints'\]"),
        "shape.npy": (UserValueError, r"shape \(6, 20, 3\), expected \(T, 21, 3\)"),
        "trunc.npy": (UserValueError, r"trunc\.npy is truncated"),
        "text.npy": (UserValueError, r"text\.npy is not a \.npy file"),
        "str.npy": (UserValueError, r"str\.npy has dtype <U1"),
        "obj.npy": (UserValueError, r"obj\.npy holds pickled objects"),
        "dir.npy": (UserFileError, r"dir\.npy is a folder"),
        "missing.npy": (UserFileError, r"missing\.npy not found"),
    }
    for name, (cls, msg) in cases.items():
        with pytest.raises(cls, match=msg) as e:
            fit_file(tmp_path / name, tmp_path / "out.npz", verbose=False)
        _one_line(e)
    np.testing.assert_array_equal(load_keypoints_npy(tmp_path / "full.npy"), right_kp)
    np.save(tmp_path / "one.npy", right_kp[0].astype(np.float32))
    assert load_keypoints_npy(tmp_path / "one.npy").shape == (1, 21, 3)
    (tmp_path / "outdir").mkdir()
    with pytest.raises(UserValueError, match="--out .*outdir is a folder"):
        fit_file(tmp_path / "full.npy", tmp_path / "outdir", verbose=False)
    with pytest.raises(UserValueError, match="--render .*outdir is a folder"):
        fit_file(tmp_path / "full.npy", tmp_path / "o.npz", render_path=tmp_path / "outdir", verbose=False)
    with pytest.raises(UserValueError, match="frames=0 must be >= 1"):
        fit_file(tmp_path / "full.npy", tmp_path / "o.npz", frames=0, verbose=False)


def test_convert_and_export_mistakes(tmp_path):
    with pytest.raises(UserValueError, match="ending in .npz or .safetensors"):
        convert_model(tmp_path / "missing.pkl", tmp_path / "out.pkl")       # dst checked before src is read
    with pytest.raises(UserFileError, match="does not exist"):
        convert_model(tmp_path / "missing.pkl", tmp_path / "out.npz")
    with zipfile.ZipFile(tmp_path / "MANO_RIGHT.npz", "w"):
        pass
    with pytest.raises(UserValueError, match="MANO_RIGHT.npz: missing keys"):
        convert_model(tmp_path / "MANO_RIGHT.npz", tmp_path / "out.npz")
    with pytest.raises(UserValueError, match="format must be"):
        export_embedded(tmp_path, fmt="obj")
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserValueError, match="is a file; pass a folder"):
        export_embedded(tmp_path / "file")


# --- rotations without scipy -------------------------------------------------------------------


def test_init_rotation_matches_float64_reference():
    """``_matrix_to_axis_angle`` (core.rotations) inverts Rodrigues, angles up to and at pi included."""
    g = torch.Generator().manual_seed(1)
    axis = torch.nn.functional.normalize(torch.randn(200, 3, generator=g, dtype=torch.float64), dim=-1)
    angle = torch.rand(200, 1, generator=g, dtype=torch.float64) * np.pi
    angle[:3] = torch.tensor([[0.0], [1e-9], [np.pi - 1e-9]], dtype=torch.float64)
    rv = axis * angle
    R = rodrigues(rv).numpy()
    out = _matrix_to_axis_angle(R.reshape(10, 20, 3, 3)).reshape(200, 3)
    np.testing.assert_allclose(rodrigues(torch.as_tensor(out)).numpy(), R, atol=1e-12)
    np.testing.assert_allclose(out[:-1][angle[:-1, 0] < 3.1], rv.numpy()[:-1][angle[:-1, 0] < 3.1], atol=1e-10)


MY_MODULES = ["beingh0/mano/io.py", "beingh0/mano/fit.py", "beingh0/mano/clean.py", "beingh0/mano/convert.py",
              "beingh0/mano/model.py", "beingh0/mano/render.py", *sorted(str(p.relative_to(ROOT)) for p in
                                                                      (ROOT / "beingh0" / "align").glob("*.py"))]


@pytest.mark.parametrize("module", MY_MODULES)
def test_no_scipy_import(module):
    """scipy is not a runtime dependency: the hand-model and alignment layers never import it."""
    tree = ast.parse((ROOT / module).read_text())
    names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 0]
    assert not [n for n in names if n == "scipy" or n.startswith("scipy.")], names
