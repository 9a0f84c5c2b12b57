"""EgoDex adapter on a fixture written here in the EgoDex HDF5 layout (h5py) + a tiny mp4.

The joints come from the embedded hand model (known MANO parameters), so the fit error is in mm
against ground truth; the camera is an ARKit camera (looks down -z, +y up) moving in an ARKit
world, which the projection test must undo to land the hands where the fixture put them.
"""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

h5py = pytest.importorskip("h5py")

from beingh0.data import load_episode, save_episode  # noqa: E402
from beingh0.data.sources import get_source  # noqa: E402
from beingh0.data.sources.egodex import KEYPOINT_JOINTS, METACARPAL_JOINTS, joint_names, read_egodex  # noqa: E402
from beingh0.data.sources.keypoints import SourceDataError  # noqa: E402
from beingh0.data.video import encode_mp4, episode_frames  # noqa: E402
from beingh0.mano.model import ManoModel, mirror_pose  # noqa: E402
from beingh0.data.synth import grasp_motion  # noqa: E402

BACKEND = None if importlib.util.find_spec("beingh0._C") is not None else "reference"
T = 24
W, H = 160, 90
K = np.array([[736.6339 / 12, 0, 80.0], [0, 736.6339 / 12, 45.0], [0, 0, 1]])  # EgoDex's K at 1/12 scale
FIT = {"stage2_iters": 120, "refine_iters": 0, "backend": BACKEND}


def _rot(axis, ang):
    from scipy.spatial.transform import Rotation

    return Rotation.from_rotvec(np.asarray(axis, float) * ang).as_matrix()


def _ground_truth():
    """Both hands' MANO parameters and keypoints in the OpenCV camera frame (float64)."""
    out = {}
    mo = grasp_motion(T + 20, seed=1, fps=30.0)  # EgoDex records at 30 FPS
    sl = slice(17, 17 + T)  # from the grasp onset (the open, flat pre-shape before it is chirality-ambiguous)
    t = lambda x: torch.as_tensor(np.asarray(x), dtype=torch.float64)
    for side, dx in (("right", 0.0), ("left", -0.16)):
        go, hp, tr = mo.global_orient[sl], mo.hand_pose[sl], mo.trans[sl].copy()
        if side == "left":  # mirror the right hand's motion and place it to the left
            go, hp = mirror_pose(t(go)).numpy(), mirror_pose(t(hp)).numpy()
            tr[:, 0] = -tr[:, 0]
        tr = tr + [dx + 0.06, 0.0, 0.0]
        m = ManoModel.embedded(side)
        with torch.no_grad():
            kp = m.keypoints(t(mo.betas), t(go), t(hp), t(tr), backend=BACKEND).numpy()
        out[side] = dict(global_orient=go, hand_pose=hp, trans=tr, betas=mo.betas, keypoints=kp)
    return out


def _arkit_cam_to_world():
    """A head-mounted ARKit camera: 1.1 m up, turning and tilting a little over time."""
    E = np.tile(np.eye(4), (T, 1, 1))
    for i in range(T):
        E[i, :3, :3] = _rot([0, 1, 0], 0.3 + 0.01 * i) @ _rot([1, 0, 0], -0.5)  # yaw, then look down
        E[i, :3, 3] = [0.1 + 0.002 * i, 1.1, -0.2]
    return E


def write_fixture(folder, *, arkit=True, drop=None, low_conf_frames=(5, 6), extra=None):
    """EgoDex-layout episode ``folder/task/0.hdf5`` + ``0.mp4``; returns (ground truth, hdf5 path)."""
    gt = _ground_truth()
    E = _arkit_cam_to_world() if arkit else _arkit_cam_to_world() @ np.diag([1.0, -1, -1, 1])
    flip = np.array([1.0, -1.0, -1.0]) if arkit else np.ones(3)
    d = folder / "basic_pick_place"
    d.mkdir(parents=True, exist_ok=True)
    path = d / "0.hdf5"
    with h5py.File(path, "w") as f:
        f["camera/intrinsic"] = K.astype(np.float32)
        f["transforms/camera"] = E.astype(np.float32)
        for name in ("hip", "spine1", "neck1"):
            f[f"transforms/{name}"] = np.tile(np.eye(4, dtype=np.float32), (T, 1, 1))
            f[f"confidences/{name}"] = np.ones(T, np.float32)
        for side, g in gt.items():
            cam_pts = g["keypoints"] * flip                                   # OpenCV -> this camera's axes
            world = np.einsum("tij,tkj->tki", E[:, :3, :3], cam_pts) + E[:, None, :3, 3]
            for k, n in enumerate(joint_names(side)):
                tf = np.tile(np.eye(4), (T, 1, 1))
                tf[:, :3, :3] = _rot([0, 0, 1], 0.1 * k)                    # joint orientations (unused)
                tf[:, :3, 3] = world[:, k]
                conf = np.full(T, 0.9, np.float32)
                if side == "right":
                    conf[list(low_conf_frames)] = 0.0032                       # ARKit's untracked floor
                f[f"transforms/{n}"] = tf.astype(np.float32)
                f[f"confidences/{n}"] = conf
            for m in METACARPAL_JOINTS:                                       # inside the palm; not used
                tf = np.tile(np.eye(4), (T, 1, 1))
                tf[:, :3, 3] = 0.7 * world[:, 0] + 0.3 * world[:, 9]
                f[f"transforms/{side}{m}"] = tf.astype(np.float32)
                f[f"confidences/{side}{m}"] = np.full(T, 0.9, np.float32)
        f.attrs["llm_description"] = "Pick up the black stapler and place it in the box lid."
        f.attrs["llm_description2"] = "None"
        f.attrs["description"] = "pick up a stapler and put it in the lid"
        f.attrs["task"] = "basic_pick_place"
        f.attrs["environment"] = "table:metal, hand:bimanual"
        f.attrs["llm_verbs"] = np.array(["pick", "place"], dtype=h5py.string_dtype())
        f.attrs["annotated"] = True
        if drop:
            del f[drop]
        if extra:
            extra(f)
    pix = np.zeros((T, H, W, 3), np.uint8)
    pix[:, :, : W // 2] = (200, 40, 40)  # left half red, right half blue: shows which way x goes
    pix[:, :, W // 2:] = (40, 40, 200)
    (d / "0.mp4").write_bytes(encode_mp4(pix, 30))
    return gt, path


@pytest.fixture(scope="module")
def fixture_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("egodex")
    gt, _ = write_fixture(root)
    return root, gt


@pytest.fixture(scope="module")
def episode(fixture_dir):
    root, _ = fixture_dir
    src = get_source("egodex")
    (ep,) = src.load_item(root, "basic_pick_place/0.hdf5", {"fit": FIT})
    return ep


def test_names_and_registry():
    src = get_source("egodex")
    assert src.redistributable is False and "NC" in src.license
    assert len(KEYPOINT_JOINTS) == 21 and joint_names("left")[0] == "leftHand" and joint_names("right")[8] == "rightIndexFingerTip"
    assert joint_names("left")[1:5] == ("leftThumbKnuckle", "leftThumbIntermediateBase", "leftThumbIntermediateTip", "leftThumbTip")


def test_list_items(fixture_dir):
    root, _ = fixture_dir
    assert get_source("egodex").list_items(root, {}) == ["basic_pick_place/0.hdf5"]


def test_projection_lands_where_the_fixture_put_the_hands(fixture_dir):
    """ARKit camera axes -> OpenCV: projecting with the intrinsics must give the fixture's pixels."""
    root, gt = fixture_dir
    d = read_egodex(root / "basic_pick_place" / "0.hdf5")
    assert d["camera_axes"] == "arkit"
    for side in ("left", "right"):
        kp = d["keypoints"][side]
        np.testing.assert_allclose(kp, gt[side]["keypoints"], atol=2e-6)  # float32 storage
        assert (kp[..., 2] > 0.2).all()                                    # in front of the camera
        uv = kp @ K.T
        uv = uv[..., :2] / uv[..., 2:]
        want = gt[side]["keypoints"] @ K.T
        np.testing.assert_allclose(uv, want[..., :2] / want[..., 2:], atol=1e-3)
        assert ((uv >= 0) & (uv < [W, H])).all(), f"{side} hand projects outside the image"
        wrist_u = uv[:, 0, 0]
        assert (wrist_u < W / 2).all() if side == "left" else (wrist_u > W / 2).all()
    # the camera-to-world of the episode maps camera points back to the world (OpenCV axes)
    with h5py.File(root / "basic_pick_place" / "0.hdf5") as f:
        world = f["transforms/rightHand"][:, :3, 3].astype(np.float64)
    E = d["cam_to_world"]
    back = np.einsum("tij,tj->ti", E[:, :3, :3], d["keypoints"]["right"][:, 0]) + E[:, :3, 3]
    np.testing.assert_allclose(back, world, atol=1e-5)
    down = E[:, :3, 1]                     # the camera's +y axis in the world: must point downwards
    assert (down[:, 1] < 0).all()


def test_auto_axes_also_accepts_opencv_camera_poses(tmp_path):
    gt, path = write_fixture(tmp_path, arkit=False)
    d = read_egodex(path)
    assert d["camera_axes"] == "opencv"
    np.testing.assert_allclose(d["keypoints"]["right"], gt["right"]["keypoints"], atol=2e-6)
    forced = read_egodex(path, {"camera_axes": "arkit"})
    assert (forced["keypoints"]["right"][..., 2] < 0).all()  # the wrong convention puts hands behind


def test_episode_fit_error_and_contents(episode, fixture_dir):
    _, gt = fixture_dir
    ep = episode
    assert ep.source == "egodex" and ep.fps == 30 and ep.num_frames == T and set(ep.hands) == {"left", "right"}
    assert ep.frames.kind == "external" and ep.frames.path == "basic_pick_place/0.mp4"
    np.testing.assert_array_equal(ep.frames.indices, np.arange(T))
    assert ep.text.instruction.startswith("Pick up the black stapler")
    assert ep.meta["egodex_attrs"]["llm_verbs"] == "pick, place" and ep.meta["camera_axes_in_file"] == "arkit"
    assert (ep.camera.width, ep.camera.height) == (W, H)
    np.testing.assert_allclose(ep.camera.intrinsics[0], [K[0, 0], K[1, 1], K[0, 2], K[1, 2]])
    for side in ("left", "right"):
        h = ep.hands[side]
        m = ManoModel.embedded(side)
        t = lambda x: torch.as_tensor(x, dtype=torch.float64)
        with torch.no_grad():
            kp = m.keypoints(t(h.betas), t(h.global_orient), t(h.hand_pose), t(h.trans), backend=BACKEND).numpy()
        err = np.linalg.norm(kp - gt[side]["keypoints"], axis=-1) * 1000
        assert err.mean() < 2.0, (side, err.mean())                         # mm, vs ground truth
        np.testing.assert_allclose(h.trans, gt[side]["trans"], atol=4e-3)    # trans = wrist, camera frame
        assert ep.meta["fit"][side]["mean_error_mm"] < 2.0
    # low-confidence frames 5-6 of the right hand: not observed, interpolated, still valid
    r = ep.hands["right"]
    assert r.valid.all() and (r.confidence[[5, 6]] == 0).all() and (r.confidence[0] > 0.85)


def test_episode_round_trip_and_external_frames(episode, fixture_dir, tmp_path):
    root, _ = fixture_dir
    back = load_episode(save_episode(episode, tmp_path / "e.tar"))
    np.testing.assert_array_equal(back.hands["right"].hand_pose, episode.hands["right"].hand_pose)
    px = episode_frames(back, [0, T - 1], root=root)
    assert px.shape == (2, H, W, 3)
    assert px[0, 45, 10, 0] > 150 and px[0, 45, 150, 2] > 150  # left red, right blue: not mirrored


def test_stride_and_long_gap_invalid(tmp_path):
    _, path = write_fixture(tmp_path, low_conf_frames=tuple(range(8, 20)))  # 12 frames: longer than max_gap
    (ep,) = get_source("egodex").load_item(tmp_path, "basic_pick_place/0.hdf5",
                                           {"fit": {**FIT, "stage2_iters": 40}, "stride": 2})
    assert ep.fps == 15 and ep.num_frames == T // 2
    np.testing.assert_array_equal(ep.frames.indices, np.arange(0, T, 2))
    v = ep.hands["right"].valid
    assert not v[4:10].any() and v[:4].all() and ep.hands["left"].valid.all()


def _put(name, value):
    def edit(f):
        if name in f:
            del f[name]
        f[name] = value
    return edit


@pytest.mark.parametrize("kw, field", [
    (dict(drop="camera/intrinsic"), "camera/intrinsic"),
    (dict(drop="transforms/camera"), "transforms/camera"),
    (dict(drop="transforms/rightIndexFingerTip"), "transforms/rightIndexFingerTip"),
    (dict(extra=_put("camera/intrinsic", np.eye(4))), "camera/intrinsic"),
    (dict(extra=_put("transforms/rightThumbTip", np.zeros((T, 3, 4)))), "transforms/rightThumbTip"),
    (dict(extra=_put("transforms/leftHand", np.zeros((T - 1, 4, 4)))), "transforms/leftHand"),
    (dict(extra=_put("confidences/leftThumbTip", np.full(T, 3.0))), "confidences/leftThumbTip"),
    (dict(extra=_put("transforms/camera", np.full((T, 4, 4), np.nan))), "transforms/camera"),
    (dict(extra=_put("camera/intrinsic", np.full((3, 3), np.nan))), "camera/intrinsic"),
])
def test_malformed_files_name_file_and_field(tmp_path, kw, field):
    _, path = write_fixture(tmp_path, **kw)
    with pytest.raises(SourceDataError) as ei:
        get_source("egodex").load_item(tmp_path, "basic_pick_place/0.hdf5", {"fit": {**FIT, "stage2_iters": 2}})
    assert str(path) in str(ei.value) and field in str(ei.value)


def test_missing_and_broken_files(tmp_path):
    src = get_source("egodex")
    with pytest.raises(FileNotFoundError):
        src.load_item(tmp_path, "nope.hdf5", {})
    (tmp_path / "x.hdf5").write_bytes(b"not hdf5")
    with pytest.raises(SourceDataError, match="x.hdf5"):
        src.load_item(tmp_path, "x.hdf5", {})
    _, path = write_fixture(tmp_path)
    path.with_suffix(".mp4").unlink()
    with pytest.raises(FileNotFoundError, match="0.mp4"):
        src.load_item(tmp_path, "basic_pick_place/0.hdf5", {})
    (ep,) = src.load_item(tmp_path, "basic_pick_place/0.hdf5", {"require_video": False, "max_frames": 6,
                                                                 "fit": {**FIT, "stage2_iters": 5}})
    assert ep.frames.kind == "none" and ep.num_frames == 6 and ep.camera.width == 1920
    with pytest.raises(ValueError, match="camera_axes"):
        read_egodex(path, {"camera_axes": "unity"})
