"""The 3D-keypoint source: real MediaPipe keypoints + their video, a synthetic bimanual stream with
swaps, gaps and a world frame, and clear errors on bad files (pickles refused)."""
from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch

from beingh0.data.sources import get_source
from beingh0.data.sources.keypoints import SourceDataError, world_to_camera
from beingh0.data.video import episode_frames
from beingh0.mano.model import ManoModel, mirror_pose
from beingh0.data.synth import grasp_motion

BACKEND = None if importlib.util.find_spec("beingh0._C") is not None else "reference"
FIT = {"stage2_iters": 100, "refine_iters": 0, "backend": BACKEND}


def _fk(side, betas, go, hp, tr):
    t = lambda x: torch.as_tensor(np.asarray(x), dtype=torch.float64)
    with torch.no_grad():
        return ManoModel.embedded(side).keypoints(t(betas), t(go), t(hp), t(tr), backend=BACKEND).numpy()


def test_real_mediapipe_keypoints_and_video(shared_data):
    """dex-retargeting's 621-frame right hand: 621 keypoint frames = 621 video frames (1:1, 30 fps).
    The keypoints are wrist-centred in a wrist frame (no camera): trans stays ~0 and is flagged."""
    root = shared_data / "dex_retargeting_human_hand"
    if not root.is_dir():
        pytest.skip(f"{root} is absent")
    src = get_source("keypoints")
    assert src.list_items(root, {}) == ["human_joint_right.npy"]  # the .pkl copy is never listed
    opts = {"video": "human_hand_video.mp4", "fps": 30, "frame": "wrist", "stride": 2, "max_frames": 60,
            "fit": {"stage2_iters": 80, "refine_iters": 20, "backend": BACKEND}}
    (ep,) = src.load_item(root, "human_joint_right.npy", opts)
    assert ep.meta["video_frames"] == len(np.load(root / "human_joint_right.npy", allow_pickle=False)) == 621
    assert ep.fps == 15 and ep.num_frames == 60 and set(ep.hands) == {"right"}
    assert ep.frames.kind == "external" and ep.frames.path == "human_hand_video.mp4"
    np.testing.assert_array_equal(ep.frames.indices, np.arange(0, 120, 2))
    st = ep.meta["fit"]["right"]
    assert st["mean_error_mm"] < 7.0, st  # MediaPipe joints are not MANO joint centres: a few mm floor
    assert ep.hands["right"].valid.all() and np.abs(ep.hands["right"].trans).max() < 0.03  # wrist ~ origin (MANO vs MediaPipe wrist: ~1.5 cm)
    assert ep.meta["trans_meaningful"] is False and ep.meta["camera_calibrated"] is False
    assert (ep.camera.width, ep.camera.height) == (1280, 720)
    px = episode_frames(ep, [0, 59], root=root)
    assert px.shape == (2, 720, 1280, 3) and px.std() > 10
    with pytest.raises(SourceDataError, match="pickled"):
        src.load_item(root, "human_joint_right.pkl", {})


def _bimanual(T=20):
    mo = grasp_motion(T + 20, seed=5)
    sl = slice(12, 12 + T)
    go, hp, tr = mo.global_orient[sl], mo.hand_pose[sl], mo.trans[sl] + [0.08, 0, 0]
    t = lambda x: torch.as_tensor(x, dtype=torch.float64)
    trl = tr * [-1, 1, 1] - [0.0, 0, 0]
    right = _fk("right", mo.betas, go, hp, tr)
    left = _fk("left", mo.betas, mirror_pose(t(go)).numpy(), mirror_pose(t(hp)).numpy(), trl)
    return left, right


def test_bimanual_world_frame_swaps_and_gaps(tmp_path):
    T = 20
    left, right = _bimanual(T)
    E = np.tile(np.eye(4), (T, 1, 1))
    from scipy.spatial.transform import Rotation

    E[:, :3, :3] = Rotation.from_rotvec([0.2, -0.4, 0.1]).as_matrix()
    E[:, :3, 3] = [0.5, -0.2, 1.0]
    to_world = lambda p: np.einsum("tij,tkj->tki", E[:, :3, :3], p) + E[:, None, :3, 3]
    L, R = to_world(left), to_world(right)
    L[[7, 8]], R[[7, 8]] = R[[7, 8]].copy(), L[[7, 8]].copy()  # the tracker swapped the labels
    R[12:14] = np.nan                                           # a short gap
    np.testing.assert_allclose(world_to_camera(to_world(right), E), right, atol=1e-12)
    np.savez(tmp_path / "seq.npz", left=L, right=R, fps=np.float64(30), cam_to_world=E,
             intrinsics=np.array([500.0, 500, 320, 240]), image_size=np.array([640, 480]))
    (tmp_path / "seq.json").write_text(json.dumps({"text": {"instruction": "grasp with both hands"}, "license": "CC0-1.0"}))
    src = get_source("keypoints")
    assert src.list_items(tmp_path, {}) == ["seq.npz"]
    (ep,) = src.load_item(tmp_path, "seq.npz", {"fit": FIT})
    assert ep.meta["swapped_frames"] == [7, 8] and ep.meta["keypoint_frame"] == "world"
    assert ep.text.instruction == "grasp with both hands" and ep.license == "CC0-1.0" and ep.frames.kind == "none"
    np.testing.assert_allclose(ep.camera.cam_to_world, E)
    for side, gt in (("left", left), ("right", right)):
        h = ep.hands[side]
        err = np.linalg.norm(_fk(side, h.betas, h.global_orient, h.hand_pose, h.trans) - gt, axis=-1) * 1000
        assert err.mean() < 3.0 and ep.meta["fit"][side]["mean_error_mm"] < 3.0, (side, err.mean(), ep.meta["fit"])
        assert h.valid.all()
    assert (ep.hands["right"].confidence[12:14] == 0).all()


@pytest.mark.parametrize("make, field", [
    (lambda p: np.save(p / "a.npy", np.zeros((5, 20, 3))), "shape"),
    (lambda p: np.save(p / "a.npy", np.ones((5, 21, 3)) * 120.0), "metres"),
    (lambda p: np.save(p / "a.npy", np.full((5, 21, 3), np.inf)), "inf"),
    (lambda p: np.save(p / "a.npy", np.zeros((5, 21, 3), np.int32)), "dtype"),
    (lambda p: np.save(p / "a.npy", np.array([np.zeros((21, 3)), None], dtype=object)), "pickled"),
    (lambda p: np.savez(p / "a.npz", right=np.array([None, 1.0], dtype=object)), "pickled"),
    (lambda p: np.savez(p / "a.npz", hands=np.zeros((5, 21, 3))), "left/right"),
    (lambda p: np.savez(p / "a.npz", left=np.zeros((5, 21, 3)), right=np.zeros((4, 21, 3))), "frame counts"),
    (lambda p: (np.save(p / "a.npy", np.zeros((5, 21, 3))), (p / "a.json").write_text("{oops")), "JSON"),
    (lambda p: np.savez(p / "a.npz", right=np.zeros((5, 21, 3)), cam_to_world=np.full((5, 4, 4), np.nan)), "cam_to_world"),
])
def test_bad_files_give_clear_errors(tmp_path, make, field):
    make(tmp_path)
    item = get_source("keypoints").list_items(tmp_path, {})[0]
    with pytest.raises(SourceDataError) as ei:
        get_source("keypoints").load_item(tmp_path, item, {"fit": {"stage2_iters": 2}})
    assert str(tmp_path / item) in str(ei.value) or "a.json" in str(ei.value)
    assert field in str(ei.value)


def test_options_are_checked(tmp_path):
    np.save(tmp_path / "right.npy", _bimanual(8)[1])
    src = get_source("keypoints")
    with pytest.raises(ValueError, match="unknown FitConfig"):
        src.load_item(tmp_path, "right.npy", {"fit": {"iterations": 3}})
    with pytest.raises(ValueError, match="stride"):
        src.load_item(tmp_path, "right.npy", {"stride": 0})
    nan = np.full((8, 21, 3), np.nan)
    np.save(tmp_path / "empty_left.npy", nan)
    assert src.load_item(tmp_path, "empty_left.npy", {}) == []  # nothing to fit: no episode
