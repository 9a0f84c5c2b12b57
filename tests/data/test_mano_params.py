"""MANO-parameter sequences: convention conversions are exact (the mesh after conversion matches the
mesh the source convention describes, in mm), world->camera, file formats, and clear errors."""
from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from beingh0.data import load_episode, save_episode
from beingh0.data.sources import get_source
from beingh0.data.sources.keypoints import SourceDataError
from beingh0.data.sources.mano_params import from_beingh0, rest_wrist, to_beingh0
from beingh0.mano.model import ManoModel

BACKEND = None if importlib.util.find_spec("beingh0._C") is not None else "reference"
T = 7


def _params(rng, side="right", k=45):
    return {"global_orient": rng.normal(size=(T, 3)) * 0.8, "hand_pose": rng.normal(size=(T, k)) * 0.4,
            "betas": rng.normal(size=10), "trans": rng.normal(size=(T, 3)) * 0.1 + [0, 0, 0.6]}


def _mesh(model, p):
    t = lambda x: torch.as_tensor(np.asarray(x), dtype=torch.float64)
    with torch.no_grad():
        return model(t(p["betas"]), t(p["global_orient"]), t(p["hand_pose"]), t(p["trans"]), backend=BACKEND).vertices.numpy()


def _cam_to_world(rng):
    E = np.tile(np.eye(4), (T, 1, 1))
    E[:, :3, :3] = Rotation.from_rotvec(rng.normal(size=(T, 3)) * 0.5).as_matrix()
    E[:, :3, 3] = rng.normal(size=(T, 3))
    return E


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("conv", [
    {"trans": "smplx"},
    {"flat_hand_mean": False},
    {"pca": 12, "flat_hand_mean": False, "trans": "smplx"},
    {"pca": 45},
    {"coords": "world"},
    {"coords": "world", "trans": "smplx", "flat_hand_mean": False, "pca": 6},
])
def test_conversion_keeps_the_mesh(side, conv):
    """Mesh of the source convention (ManoModel configured like smplx/manopth, world frame moved to the
    camera) == mesh of the converted parameters with Being-H0's defaults, to < 1e-6 mm."""
    rng = np.random.default_rng(hash((side, json.dumps(conv, sort_keys=True))) % 2**32)
    k = conv.get("pca") or 45
    p = _params(rng, side, k)
    src_model = ManoModel.embedded(side, use_pca="pca" in conv, num_pca_comps=k,
                                   flat_hand_mean=conv.get("flat_hand_mean", True), trans_mode=conv.get("trans", "wrist"))
    want = _mesh(src_model, p)
    E = None
    if conv.get("coords") == "world":
        E = _cam_to_world(rng)
        Rwc = np.swapaxes(E[:, :3, :3], 1, 2)
        want = np.einsum("tij,tvj->tvi", Rwc, want - E[:, None, :3, 3])
    ours = ManoModel.embedded(side)
    q = to_beingh0(p, conv, ours, E)
    got = _mesh(ours, q)
    assert np.abs(got - want).max() * 1000 < 1e-6
    if conv.get("coords") != "world":  # and back
        back = from_beingh0(q, conv, ours)
        np.testing.assert_allclose(_mesh(src_model, back), want, atol=1e-9)


def test_smplx_transl_is_wrist_minus_rest_wrist():
    m = ManoModel.embedded("right")
    b = np.random.default_rng(0).normal(size=10)
    J0 = rest_wrist(m, b)
    with torch.no_grad():
        kp = ManoModel.embedded("right", trans_mode="smplx").keypoints(torch.as_tensor(b), torch.ones(1, 3, dtype=torch.float64),
                                                                       torch.zeros(1, 45, dtype=torch.float64), torch.zeros(1, 3, dtype=torch.float64), backend=BACKEND)
    np.testing.assert_allclose(kp[0, 0].numpy(), J0, atol=1e-12)  # rotation about the wrist leaves it in place
    assert 0.001 < np.linalg.norm(J0) < 0.5


def _write_npz(folder, rng, conv=None, **extra):
    p = _params(rng, "right", (conv or {}).get("pca") or 45)
    arrays = {f"right_{k}": v for k, v in p.items()}
    arrays.update(fps=np.float64(30.0), intrinsics=np.array([600.0, 600, 320, 240]), image_size=np.array([640, 480]))
    arrays.update(extra)
    np.savez(folder / "seq_a.npz", **arrays)
    (folder / "seq_a.json").write_text(json.dumps({"conventions": conv or {}, "text": {"instruction": "open the box",
                                                   "segments": [{"t0": 0.0, "t1": 0.2, "instruction": "reach"}]}}))
    return p


def test_npz_and_json_files_load(tmp_path):
    rng = np.random.default_rng(1)
    p = _write_npz(tmp_path, rng, {"trans": "smplx", "flat_hand_mean": False})
    lp = _params(rng, "left")
    (tmp_path / "seq_b.json").write_text(json.dumps({
        "fps": 60, "left": {k: np.asarray(v).tolist() for k, v in lp.items()},
        "conventions": {"pca": None}, "cam_to_world": np.eye(4).tolist(), "license": "CC-BY-4.0"}))
    src = get_source("mano_params")
    assert src.list_items(tmp_path, {}) == ["seq_a.npz", "seq_b.json"]  # the sidecar is not an item
    (a,) = src.load_item(tmp_path, "seq_a.npz", {})
    assert a.fps == 30 and a.num_frames == T and a.text.instruction == "open the box" and a.meta["camera_calibrated"]
    m = ManoModel.embedded("right")
    want = _mesh(ManoModel.embedded("right", flat_hand_mean=False, trans_mode="smplx"), p)
    h = a.hands["right"]
    got = _mesh(m, {"betas": h.betas, "global_orient": h.global_orient, "hand_pose": h.hand_pose, "trans": h.trans})
    assert np.abs(got - want).max() * 1000 < 0.01  # float32 storage in the episode
    back = load_episode(save_episode(a, tmp_path / "a.tar"))
    np.testing.assert_array_equal(back.hands["right"].trans, h.trans)
    (b,) = src.load_item(tmp_path, "seq_b.json", {"stride": 2})
    assert b.fps == 30 and b.num_frames == 4 and set(b.hands) == {"left"} and b.license == "CC-BY-4.0"
    np.testing.assert_allclose(b.hands["left"].trans, np.asarray(lp["trans"])[::2], atol=1e-6)


def test_invalid_frames_may_hold_nan(tmp_path):
    rng = np.random.default_rng(2)
    go = rng.normal(size=(T, 3))
    go[3] = np.nan
    valid = np.ones(T, bool)
    valid[3] = False
    _write_npz(tmp_path, rng, right_global_orient=go, right_valid=valid)
    (ep,) = get_source("mano_params").load_item(tmp_path, "seq_a.npz", {})
    assert not ep.hands["right"].valid[3] and ep.hands["right"].valid.sum() == T - 1
    valid[3] = True
    _write_npz(tmp_path, rng, right_global_orient=go, right_valid=valid)
    with pytest.raises(SourceDataError, match=r"right.global_orient.*frames \[3\]"):
        get_source("mano_params").load_item(tmp_path, "seq_a.npz", {})


@pytest.mark.parametrize("extra, field", [
    ({"right_hand_pose": np.zeros((T, 46))}, "right.hand_pose"),
    ({"right_trans": np.zeros((T, 2))}, "right.trans"),
    ({"right_global_orient": np.zeros((T + 1, 3))}, "right.global_orient"),
    ({"right_betas": np.full(10, np.nan)}, "right.betas"),
    ({"cam_to_world": np.full((4, 4), 2.0)}, "cam_to_world"),
    ({"intrinsics": np.array([0.0, 1, 2, 3])}, "intrinsics"),
])
def test_malformed_npz_names_file_and_field(tmp_path, extra, field):
    _write_npz(tmp_path, np.random.default_rng(3), **extra)
    with pytest.raises(SourceDataError) as ei:
        get_source("mano_params").load_item(tmp_path, "seq_a.npz", {})
    assert str(tmp_path / "seq_a.npz") in str(ei.value) and field in str(ei.value)


def test_pickles_and_bad_conventions_refused(tmp_path):
    src = get_source("mano_params")
    (tmp_path / "x.pkl").write_bytes(b"\x80\x04K\x01.")
    with pytest.raises(SourceDataError, match="pickled"):
        src.load_item(tmp_path, "x.pkl", {})
    np.savez(tmp_path / "obj.npz", right_global_orient=np.array([None, 1], dtype=object))
    with pytest.raises(SourceDataError, match="pickled"):
        src.load_item(tmp_path, "obj.npz", {})
    _write_npz(tmp_path, np.random.default_rng(4), {"trans": "pelvis"})
    with pytest.raises(SourceDataError, match="trans"):
        src.load_item(tmp_path, "seq_a.npz", {})
    _write_npz(tmp_path, np.random.default_rng(4), {"coords": "world"})
    with pytest.raises(SourceDataError, match="cam_to_world"):
        src.load_item(tmp_path, "seq_a.npz", {})
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(SourceDataError, match="bad.json"):
        src.load_item(tmp_path, "bad.json", {})
    (tmp_path / "nohands.json").write_text('{"fps": 30}')
    with pytest.raises(SourceDataError, match="no hand parameters"):
        src.load_item(tmp_path, "nohands.json", {})


def test_world_to_camera_rotations_match_scipy():
    """``_rot``/``_aa`` (beingh0.core.rotations, no scipy at run time) agree with scipy to float64."""
    from beingh0.data.sources.mano_params import _aa, _rot

    rng = np.random.default_rng(3)
    v = rng.normal(size=(300, 3))
    v *= rng.uniform(0, np.pi - 1e-6, (300, 1)) / np.linalg.norm(v, axis=1, keepdims=True)
    v[:2] = [[0, 0, 0], [0, 1e-10, 0]]
    np.testing.assert_allclose(_rot(v), Rotation.from_rotvec(v).as_matrix(), atol=1e-14, rtol=0)
    M = Rotation.from_rotvec(v).as_matrix()
    np.testing.assert_allclose(_aa(M), Rotation.from_matrix(M).as_rotvec(), atol=1e-12, rtol=0)
    assert _rot(v).dtype == np.float64 and _aa(M).shape == (300, 3)
