"""RobotDataset (frame-level policy data over LeRobot folders) on the real G1 v2.1 episode and its v3.0
copy, the synthetic robot-demonstration writer, the MANO -> Inspire mapping, bad folders, and the
resumable loader with workers."""
from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
import torch

pytest.importorskip("pyarrow")
pytest.importorskip("av")

from beingh0.core.errors import UserError  # noqa: E402
from beingh0.data.lerobot import LeRobotDataset  # noqa: E402
from beingh0.data.robot import RobotDataset  # noqa: E402
from beingh0.data.video import decode_video  # noqa: E402

CAM = "observation.images.cam_high"
SIZE = (64, 48)  # decode the real 640x480 AV1 episode small: the test stays fast


@pytest.fixture(scope="module")
def real(v21):
    return RobotDataset(v21, chunk=16, image_size=SIZE)


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from beingh0.data.synth.robot import robot_demos

    return robot_demos(tmp_path_factory.mktemp("robot") / "demos", episodes=2, seconds=1.0, size=(32, 32), seed=3)


# ------------------------------------------------------------------------------------------ real G1
def test_real_episode_items(real, v21):
    ref = LeRobotDataset(v21).episode(1)
    m = real.meta
    assert len(real) == 393 and real.episode_indices() == [1] and list(real.episode_starts()) == [0, 393]
    assert (m.fps, m.state_dim, m.action_dim, m.robot_type, m.codebase_version) == (30, 26, 26, "Unitree_G1_Inspire", "v2.1")
    assert m.state_names[14] == "kLeftHandPinky" and m.action_names[-1] == "kRightHandThumbRotation"
    assert m.cameras == [CAM] and m.image_sizes == {CAM: SIZE} and m.intrinsics == {CAM: None}
    assert real.state_table().shape == (393, 26) and real.action_table().dtype == np.float32
    np.testing.assert_array_equal(real.state_table(), ref.state)
    it = real[100]
    assert it["observation.state"].dtype == torch.float32 and it["observation.state"].shape == (26,)
    np.testing.assert_array_equal(it["action"].numpy(), ref.action[100:116])
    assert not it["action_is_pad"].any() and it["action"].shape == (16, 26)
    assert (it["task"], it["episode_index"], it["frame_index"], it["index"]) == ("Pick up the yellow bottle on the table.", 1, 100, 100)
    assert it["timestamp"] == pytest.approx(100 / 30, abs=1e-5)
    assert not any(k.startswith("intrinsics.") for k in it)  # LeRobot records none
    # the end of the episode: the last action repeats, flagged as padding
    end = real[385]
    pad = end["action_is_pad"].numpy()
    assert pad.tolist() == [False] * 8 + [True] * 8
    np.testing.assert_array_equal(end["action"].numpy()[:8], ref.action[385:])
    np.testing.assert_array_equal(end["action"].numpy()[8:], np.repeat(ref.action[-1:], 8, 0))
    # frames equal a direct decode of the same video frames; sample ids past len wrap (epoch * N + i)
    px = decode_video(v21 / f"videos/chunk-000/{CAM}/episode_000001.mp4", [0, 100, 200], resize=SIZE)
    for t, p in zip([0, 100, 200], px):
        img = real[t][CAM]
        assert img.dtype == torch.uint8 and img.shape == (48, 64, 3)
        np.testing.assert_array_equal(img.numpy(), p)
    assert real[393 + 7]["index"] == 7 and px.std() > 10


def test_v3_copy_equals_v21(real, v21, tmp_path):
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("_lerobot_tests", Path(__file__).with_name("test_lerobot.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    _to_v3 = mod._to_v3  # the v3.0 copy the reader's own test makes

    v3 = RobotDataset(_to_v3(v21, tmp_path / "v3"), image_size=SIZE)
    assert v3.meta.codebase_version == "v3.0" and v3.episode_indices() == [0, 1] and list(v3.episode_starts()) == [0, 200, 393]
    np.testing.assert_array_equal(v3.state_table(), real.state_table())
    np.testing.assert_array_equal(v3.action_table(), real.action_table())
    for i in (0, 150, 200, 300, 392):  # 200: the second v3 episode's first frame, at offset 200 of the shared video
        a, b = v3[i], real[i]
        np.testing.assert_array_equal(a[CAM].numpy(), b[CAM].numpy())
        assert a["frame_index"] == (i if i < 200 else i - 200) and a["task"] == b["task"]
        if i + 16 <= 200 or i >= 200:  # chunks that do not cross v3's episode cut agree
            np.testing.assert_array_equal(a["action"].numpy(), b["action"].numpy())
    assert v3[199]["action_is_pad"].sum() == 15  # the cut is an episode end in v3
    # (episode 1 sits at frame 200 of the shared video: it is decoded from the key frame before it,
    # decode_video(seek=True), and its frames 200 and 300 equalled the v2.1 file's above)
    assert v3.fingerprint() != real.fingerprint()


# ------------------------------------------------------------------------------------------ synthetic
def test_synthetic_writer_round_trip(synth, v21):
    from beingh0.data.synth import SynthConfig, synth_episode
    from beingh0.data.synth.robot import episode_robot_arrays, robot_demos, robot_state_names

    ds = RobotDataset(synth, chunk=4)
    m = ds.meta
    assert len(ds) == 30 and ds.episode_indices() == [0, 1] and m.state_dim == m.action_dim == 30 and m.fps == 15
    assert m.state_names == robot_state_names() and m.state_names[-6:] == [
        "kRightHandPinky", "kRightHandRing", "kRightHandMiddle", "kRightHandIndex", "kRightHandThumbBend",
        "kRightHandThumbRotation"]  # the G1 dataset's names for the same joints
    real_names = LeRobotDataset(v21).feature_names("action")
    assert m.state_names[-12:] == real_names[-12:]
    # the same layout and fields as the real v2.1 folder
    for rel in ("meta/info.json", "meta/episodes.jsonl", "meta/tasks.jsonl", "meta/episodes_stats.jsonl",
                "data/chunk-000/episode_000001.parquet", f"videos/chunk-000/{CAM}/episode_000001.mp4"):
        assert (synth / rel).is_file(), rel
    mine, theirs = (json.loads((r / "meta/info.json").read_text()) for r in (synth, v21))
    assert set(theirs) <= set(mine) and set(theirs["features"]) == set(mine["features"])
    assert set(theirs["features"][CAM]["info"]) == set(mine["features"][CAM]["info"])
    st_mine = json.loads((synth / "meta/episodes_stats.jsonl").read_text().splitlines()[0])
    st_theirs = json.loads((v21 / "meta/episodes_stats.jsonl").read_text().splitlines()[0])
    assert set(st_mine["stats"]) >= set(st_theirs["stats"]) and set(st_mine["stats"]["action"]) == set(st_theirs["stats"]["action"])
    # contents: the synthetic episode's retargeted arrays, frames, instruction and camera
    cfg = SynthConfig(seconds=1.0, fps=15, size=(32, 32))
    ep = synth_episode(3, 1, cfg)
    state, action = episode_robot_arrays(ep)
    np.testing.assert_array_equal(ds.state_table()[15:], state)
    np.testing.assert_array_equal(action[:-1], state[1:])  # action = next state
    it = ds[15 + 13]
    np.testing.assert_array_equal(it["action"].numpy(), np.concatenate([action[13:], action[-1:], action[-1:]]))
    assert it["action_is_pad"].tolist() == [False, False, True, True]
    assert it["task"] == ep.text.instruction and it["episode_index"] == 1
    np.testing.assert_array_equal(it[CAM].numpy(), decode_video(ep.frames.data, [13], size=(32, 32))[0])
    np.testing.assert_allclose(it[f"intrinsics.{CAM}"].numpy(), ep.camera.intrinsics[0], rtol=1e-6)
    assert m.intrinsics[CAM] is None  # per-episode cameras differ
    hands = ds.state_table()[:, 18:]
    assert hands.min() >= 0 and hands.max() <= 1 and np.ptp(hands, 0).max() > 0.2  # hands move, in Unitree's units
    # image_size rescales the recorded intrinsics
    small = RobotDataset(synth, image_size=(16, 16))
    fx, fy, cx, cy = ep.camera.intrinsics[0]
    np.testing.assert_allclose(small[20][f"intrinsics.{CAM}"].numpy(), [fx / 2, fy / 2, (cx + 0.5) / 2 - 0.5, (cy + 0.5) / 2 - 0.5], rtol=1e-6)
    assert small[20][CAM].shape == (16, 16, 3)
    # reuse keeps the folder; another setting without overwrite is a one-line error
    assert robot_demos(synth, episodes=2, seconds=1.0, size=(32, 32), seed=3, reuse=True) == synth
    with pytest.raises(UserError, match="overwrite"):
        robot_demos(synth, episodes=1, seconds=1.0, size=(32, 32), seed=3)


# ------------------------------------------------------------------------------------------ mapping
def _hand(curls, thumb_bend, thumb_yaw, side="right"):
    """Analytic 21 keypoints: fingers along +y, index at +x (right hand), palm facing +z, each finger
    bent by curls[f] / 3 at MCP, PIP and DIP toward +z; the thumb metacarpal at azimuth thumb_yaw
    about +y from +x toward +z, bent by thumb_bend / 2 at its MCP and IP."""
    k = np.zeros((21, 3))
    bases = {5: 0.02, 9: 0.0, 13: -0.02, 17: -0.04}  # index, middle, ring, pinky MCP x (middle on the long axis)
    fingers = {17: curls[0], 13: curls[1], 9: curls[2], 5: curls[3]}
    for m, x in bases.items():
        k[m] = [x, 0.09, 0]
        d0 = k[m] / np.linalg.norm(k[m])  # each finger bends in the plane of its metacarpal and the palm normal
        ang, p = 0.0, k[m].copy()
        for j in range(1, 4):
            ang += fingers[m] / 3
            p = p + 0.025 * (math.cos(ang) * d0 + math.sin(ang) * np.array([0, 0, 1.0]))
            k[m + j] = p
    k[1] = [0.02, 0.02, 0]
    d = np.array([math.cos(thumb_yaw), 0.5, math.sin(thumb_yaw)]) / math.hypot(1, 0.5)
    k[2] = k[1] + 0.04 * d
    ax = np.cross(d, [0, 1, 0])
    ax /= np.linalg.norm(ax)
    ang = 0.0
    for j in (3, 4):
        ang += thumb_bend / 2
        c, s = math.cos(ang), math.sin(ang)
        v = d * c + np.cross(ax, d) * s  # rotation of d about ax (ax orthogonal to d)
        k[j] = k[j - 1] + 0.03 * v
    if side == "left":
        k[:, 0] *= -1
    return k


def _reference(k, side):
    """Plain float64 per-frame re-implementation with math (the mapping's definition)."""
    def sub(a, b): return [a[i] - b[i] for i in range(3)]
    def dot(a, b): return sum(a[i] * b[i] for i in range(3))
    def cross(a, b): return [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
    def unit(a):
        n = math.sqrt(dot(a, a))
        return [x / n for x in a]
    k = [list(map(float, p)) for p in k]
    u = unit(sub(k[9], k[0]))
    ac = sub(k[5], k[17])
    l = unit([ac[i] - dot(ac, u) * u[i] for i in range(3)])
    n = cross(l, u) if side == "right" else cross(u, l)
    q = []
    for m in (17, 13, 9, 5):
        pts = [k[0], k[m], k[m + 1], k[m + 2], k[m + 3]]
        bones = [sub(pts[i + 1], pts[i]) for i in range(4)]
        a = unit(cross(bones[0], n))
        q.append(sum(math.atan2(dot(cross(bones[i], bones[i + 1]), a), dot(bones[i], bones[i + 1])) for i in range(3)) / 2.06399)
    tb = [sub(k[2], k[1]), sub(k[3], k[2]), sub(k[4], k[3])]
    q.append(sum(math.acos(max(-1.0, min(1.0, dot(tb[i], tb[i + 1]) / math.sqrt(dot(tb[i], tb[i]) * dot(tb[i + 1], tb[i + 1])))))
                 for i in range(2)) / 5.0)
    w = [tb[0][i] - dot(tb[0], u) * u[i] for i in range(3)]
    q.append(math.atan2(dot(w, n), dot(w, l)))
    lo, hi = [0, 0, 0, 0, 0, -0.1], [1.7, 1.7, 1.7, 1.7, 0.5, 1.3]
    return [(hi[j] - min(max(q[j], lo[j]), hi[j])) / (hi[j] - lo[j]) for j in range(6)]


def test_inspire_mapping_known_poses():
    from beingh0.data.retarget import INSPIRE_RANGES, inspire_denormalize, inspire_from_keypoints

    curls, bend, yaw = [0.4, 1.2, 2.0, 3.0], 1.5, 0.7
    R = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64))[0].numpy()
    for side in ("right", "left"):
        k = _hand(curls, bend, yaw, side) @ R.T + 0.3  # any global pose
        q = inspire_from_keypoints(k, side, normalized=False)
        want = np.array([c / 2.06399 for c in curls] + [bend / 5, yaw])
        want = np.clip(want, INSPIRE_RANGES[:, 0], INSPIRE_RANGES[:, 1])  # 3.0 rad of curl is past the robot's 1.7
        np.testing.assert_allclose(q, want, atol=1e-9)
        np.testing.assert_allclose(inspire_denormalize(inspire_from_keypoints(k, side)), want, atol=1e-9)
    open_hand = inspire_from_keypoints(_hand([0, 0, 0, 0], 0, 0), "right")
    np.testing.assert_allclose(open_hand, [1, 1, 1, 1, 1, 1.3 / 1.4], atol=1e-9)  # 1 = open in Unitree's units


def test_inspire_from_mano_vs_float64_reference_and_range():
    from beingh0.data.retarget import inspire_from_keypoints, inspire_from_mano
    from beingh0.mano import hand_model

    g = torch.Generator().manual_seed(1)
    for side in ("right", "left"):
        hp = torch.randn(24, 45, generator=g, dtype=torch.float64) * 0.5
        hp[:4] *= 4  # extreme poses too
        got = inspire_from_mano(hp.numpy(), side)
        assert got.shape == (24, 6) and got.dtype == np.float64 and (got >= 0).all() and (got <= 1).all()
        kp = hand_model(side).keypoints(torch.zeros(1, 10, dtype=torch.float64), torch.zeros(24, 3, dtype=torch.float64), hp,
                                        torch.zeros(24, 3, dtype=torch.float64)).numpy()
        ref = np.array([_reference(k, side) for k in kp])
        np.testing.assert_allclose(got, ref, atol=1e-9)
        # float32 keypoints (as stored) stay within 1e-4 of the float64 result
        np.testing.assert_allclose(inspire_from_keypoints(kp.astype(np.float32), side), ref, atol=1e-4)
        assert np.ptp(got, 0).min() > 0.05  # every joint responds
    flat = inspire_from_mano(np.zeros((1, 45)), "right")
    assert (flat[0, :5] > 0.95).all()  # the flat MANO hand is an open Inspire hand
    with pytest.raises(UserError, match="hand_pose"):
        inspire_from_mano(np.zeros((2, 44)), "right")
    with pytest.raises(UserError, match="side"):
        inspire_from_keypoints(np.zeros((21, 3)), "middle")


# ------------------------------------------------------------------------------------------ bad input
def _one_line(e):
    assert "\n" not in str(e.value), str(e.value)
    return str(e.value)


def test_malformed_folders(v21, tmp_path):
    with pytest.raises(UserError) as e:
        RobotDataset(tmp_path)
    assert "meta/info.json" in _one_line(e)
    bad = tmp_path / "v"
    shutil.copytree(v21 / "meta", bad / "meta")
    info = json.loads((bad / "meta/info.json").read_text())
    (bad / "meta/info.json").chmod(0o644)
    (bad / "meta/info.json").write_text(json.dumps(dict(info, codebase_version="v1.6")))
    with pytest.raises(UserError) as e:
        RobotDataset(bad)
    assert "codebase_version" in _one_line(e)
    (bad / "meta/info.json").write_text(json.dumps(info))
    with pytest.raises(UserError) as e:  # metadata only: no episode has files
        RobotDataset(bad)
    assert "none of the 100 listed episodes" in _one_line(e)
    shutil.copytree(v21 / "data", bad / "data")
    with pytest.raises(UserError) as e:  # data present, video missing
        RobotDataset(bad, episodes=[1])
    assert "episode_000001.mp4" in _one_line(e)
    with pytest.raises(UserError) as e:
        RobotDataset(v21, cameras=["wrist"])
    assert "observation.images.wrist" in _one_line(e)
    with pytest.raises(UserError) as e:
        RobotDataset(v21, chunk=0)
    _one_line(e)


def test_bad_intrinsics_sidecar(synth, tmp_path):
    out = tmp_path / "s"
    shutil.copytree(synth, out)
    p = out / "meta/camera_intrinsics.json"
    d = json.loads(p.read_text())
    d["cameras"][CAM]["episodes"]["1"] = [0, 1, 2, 3]
    p.write_text(json.dumps(d))
    with pytest.raises(UserError) as e:
        RobotDataset(out)
    assert "camera_intrinsics.json" in _one_line(e) and "fx, fy > 0" in str(e.value)


# ------------------------------------------------------------------------------------------ loader
def test_resumable_loader_with_workers(synth):
    from beingh0.data.loader import ResumableLoader

    ds = RobotDataset(synth, chunk=4, seed=5)

    def run(loader, n=None):
        out = []
        for b in loader:
            out.append(b)
            if n is not None and len(out) == n:
                break
        return out

    ref = run(ResumableLoader(ds, batch_size=4, num_workers=0, block_episodes=1))
    assert sum(len(b["index"]) for b in ref) == len(ds)
    assert sorted(torch.cat([b["index"] for b in ref]).tolist()) == list(range(len(ds)))
    par = ResumableLoader(ds, batch_size=4, num_workers=2, block_episodes=1)
    first = run(par, 3)
    state = par.state_dict()
    fresh = ResumableLoader(RobotDataset(synth, chunk=4, seed=5), batch_size=4, num_workers=2, block_episodes=1)
    fresh.load_state_dict(state)
    got = first + run(fresh)
    assert len(got) == len(ref)
    for a, b in zip(ref, got):
        assert a["task"] == b["task"]
        for k in ("index", "observation.state", "action", "action_is_pad", CAM, f"intrinsics.{CAM}", "episode_index"):
            assert torch.equal(a[k], b[k]), k


def test_synth_robot_cli(tmp_path, capsys):
    from beingh0.cli.main import main

    out = tmp_path / "demos"
    assert main(["data", "synth-robot", "--out", str(out), "--episodes", "1", "--seconds", "0.4", "--size", "16x16",
                 "--lookahead", "2", "--quiet"]) == 0
    assert "wrote 1 synthetic robot episodes" in capsys.readouterr().out
    ds = RobotDataset(out, chunk=2)
    assert len(ds) == 6 and ds[0][CAM].shape == (16, 16, 3)
    np.testing.assert_array_equal(ds.action_table()[:4], ds.state_table()[2:])  # --lookahead 2
    assert main(["data", "synth-robot", "--out", str(out), "--size", "15x16"]) == 2  # a one-line error, exit 2


def test_several_roots(synth, v21):
    two = RobotDataset([synth, synth], chunk=4, episodes=[[1], [0, 1]])
    assert len(two) == 45 and two.episode_indices() == [(0, 1), (1, 0), (1, 1)] and list(two.episode_starts()) == [0, 15, 30, 45]
    np.testing.assert_array_equal(two[0][CAM].numpy(), two[30][CAM].numpy())  # the same episode from both roots
    assert two[14]["action_is_pad"].tolist() == [False, True, True, True]  # roots do not run into each other
    with pytest.raises(UserError) as e:
        RobotDataset([synth, v21])
    assert "differ" in _one_line(e)
