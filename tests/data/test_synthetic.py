"""The synthetic source: deterministic, valid, rendered hands under their keypoints, anatomical
joint angles, language that covers the episode and matches the motion, motion-only mode."""
import numpy as np
import pytest
import torch

from beingh0.data import load_episode, save_episode
from beingh0.data.sources import get_source
from beingh0.data.synth import SCENARIOS, SynthConfig, synth_episode
from beingh0.data.synth.generate import LABEL_ARM, LABEL_HAND
from beingh0.data.synth.raster import Light, Mesh, Table, render_frame
from beingh0.mano.fit import joint_limits
from beingh0.mano.model import ManoModel


def _kp(ep, side):
    h = ep.hands[side]
    f = lambda a: torch.as_tensor(a, dtype=torch.float64)
    return ManoModel.embedded(side).keypoints(f(h.betas)[None], f(h.global_orient), f(h.hand_pose), f(h.trans)).numpy()


@pytest.fixture(scope="module")
def rendered():
    cfg = SynthConfig(seconds=1.0, size=(128, 112), image_format="jpeg")
    return [synth_episode(7, i, SynthConfig(**{**vars(cfg), "scenario": s}), return_labels=True) for i, s in enumerate(SCENARIOS)]


def test_deterministic_from_seed():
    cfg = SynthConfig(seconds=0.6, size=(48, 40), image_format="jpeg")
    (a, la), (b, lb) = (synth_episode(3, 11, cfg, return_labels=True) for _ in range(2))
    for side in ("left", "right"):
        for k in ("global_orient", "hand_pose", "betas", "trans"):
            np.testing.assert_array_equal(getattr(a.hands[side], k), getattr(b.hands[side], k))
    assert a.text == b.text and a.frames.data == b.frames.data
    np.testing.assert_array_equal(la, lb)
    c = synth_episode(3, 12, SynthConfig(seconds=0.6, frames=False))
    assert not np.array_equal(c.hands["right"].trans, a.hands["right"].trans)


def test_episodes_validate_and_round_trip(tmp_path, rendered):
    for ep, _ in rendered[:2]:
        back = load_episode(save_episode(ep, tmp_path / f"{ep.episode_id}.tar"))
        np.testing.assert_array_equal(back.hands["left"].hand_pose, ep.hands["left"].hand_pose)
        assert back.text == ep.text and back.source == "synthetic" and back.license == "CC0-1.0"
        assert back.camera.width == 128 and back.camera.height == 112 and back.num_frames == 15


def test_keypoints_project_onto_rendered_hands(rendered):
    """Wrist and fingertips (projected from the stored camera-frame parameters) fall on pixels
    the renderer labelled as that hand (wrist: hand or its forearm), unless occluded: a keypoint
    whose neighbourhood shows an object or another limb and not its hand is counted as occluded
    (fingertips behind a grasped object, a gesturing hand's fingers behind a forearm), not as a
    hit; a projection that is off lands on the table or background and counts as a miss."""
    hits = total = occluded = 0
    for ep, labels in rendered:
        fx, fy, cx, cy = ep.camera.intrinsics[0]
        H, W = labels.shape[1:]
        for side in ("left", "right"):
            k = _kp(ep, side)
            for t in range(ep.num_frames):
                for j in (0, 4, 8, 12, 16, 20):
                    x, y, z = k[t, j]
                    u, v = int(round(fx * x / z + cx)), int(round(fy * y / z + cy))
                    if not (1 <= u < W - 1 and 1 <= v < H - 1):
                        continue
                    ok = {LABEL_HAND[side]} | ({LABEL_ARM[side]} if j == 0 else set())
                    seen = set(labels[t, v - 1:v + 2, u - 1:u + 2].ravel().tolist())
                    if not ok & seen and seen - {0}:
                        occluded += 1
                        continue
                    total += 1
                    hits += bool(ok & seen)
    assert total > 300 and occluded < 0.3 * (total + occluded)
    assert hits / total > 0.85, f"only {hits}/{total} projected keypoints on their hand's pixels"


def test_renders_hands_objects_and_table(rendered):
    ep, labels = rendered[0]
    for side in ("left", "right"):
        assert (labels == LABEL_HAND[side]).any()
    assert (labels >= 10).any()  # objects
    from beingh0.data.video import episode_frames

    img = episode_frames(ep, [0])[0].astype(float)
    assert img.std() > 10  # not a blank frame


def test_joint_angles_within_limits_and_motion_smooth():
    for i in range(6):
        ep = synth_episode(1, i, SynthConfig(seconds=3.0, frames=False))
        for side, h in ep.hands.items():
            lim = joint_limits(side)
            P = h.hand_pose.reshape(-1, 15, 3)
            assert (P >= lim[..., 0] - 1e-5).all() and (P <= lim[..., 1] + 1e-5).all(), (i, side)
            step = np.linalg.norm(np.diff(h.trans, axis=0), axis=1)
            assert step.max() < 0.06, f"wrist jumps {step.max() * 1000:.0f} mm in one frame"
        assert 0.4 < np.abs(ep.hands["left"].betas).max() < 2.01  # betas sampled per episode


def test_language_covers_duration_and_matches_motion():
    for i in range(8):
        ep = synth_episode(2, i, SynthConfig(seconds=2.5, frames=False))
        names = {o["name"] for o in ep.meta["objects"]}
        for hand in ("both", "left", "right"):
            segs = sorted((s for s in ep.text.segments if s.hand == hand), key=lambda s: s.t0)
            assert segs[0].t0 == 0 and abs(segs[-1].t1 - ep.duration) < 1e-6
            assert all(abs(a.t1 - b.t0) < 1e-9 for a, b in zip(segs, segs[1:]))
        for s in ep.text.segments:
            assert s.instruction and s.caption
            if s.hand != "both":
                assert s.caption.lower().startswith(f"the {s.hand} hand")
                t0, t1 = int(round(s.t0 * ep.fps)), min(int(round(s.t1 * ep.fps)), ep.num_frames - 1)
                moved = np.linalg.norm(ep.hands[s.hand].trans[t1] - ep.hands[s.hand].trans[t0])
                retreats = any(w in s.caption for w in ("withdraws", "pulls back", "moves back", "reaches", "approaches",
                                                         "moves toward", "lifts", "raises"))
                if moved > 0.05 and not retreats:  # a hand that clearly moved is not described as only resting
                    assert not any(w in s.caption for w in ("rests on", "stays still", "lies relaxed")), s.caption
            for word in ("the ",):
                for frag in s.caption.split(word)[1:]:
                    if frag.split(" ")[0] in {"red", "blue", "green", "yellow", "orange", "purple", "white", "black", "pink", "teal", "grey", "brown"}:
                        assert " ".join(frag.split(" ")[:2]).rstrip(",.") in names, (frag, names)
        assert ep.text.instruction.endswith(".") and set(ep.text.per_hand) == {"left", "right"}


def test_press_and_pour_language():
    ep = synth_episode(0, 0, SynthConfig(seconds=6.0, frames=False, scenario="press"))
    side = ep.meta["active_hand"]
    assert any(w in " ".join(s.caption for s in ep.text.segments if s.hand == side) for w in ("presses", "pushes", "taps"))
    ep = synth_episode(0, 1, SynthConfig(seconds=14.0, frames=False, scenario="pour"))  # the whole task is in view
    assert "pour" in " ".join(s.caption for s in ep.text.segments).lower() or "tip" in ep.text.summary


def test_motion_only_and_source_registry():
    src = get_source("synthetic")
    assert src.list_items(None, {"n": 3}) == ["0", "1", "2"]
    ep = src.load_item(None, "2", {"seconds": 1.0, "frames": False, "fps": 30})[0]
    assert ep.frames.kind == "none" and ep.num_frames == 30 and ep.fps == 30
    with pytest.raises(ValueError, match="unknown option"):
        src.list_items(None, {"n": 2, "sizes": 3})
    with pytest.raises(ValueError, match="fps"):
        src.load_item(None, "0", {"fps": 24})
    with pytest.raises(ValueError, match="seeds"):
        src.load_item(None, "x", {})


def test_rasteriser_depth_order_and_coverage():
    """Two overlapping squares: the nearer one wins; coverage matches the projected area."""
    K = np.array([100.0, 100.0, 31.5, 31.5])
    sq = lambda z, s: (np.array([[-s, -s, z], [s, -s, z], [s, s, z], [-s, s, z]]), np.array([[0, 2, 1], [0, 3, 2]]))
    v1, f1 = sq(1.0, 0.1)
    v2, f2 = sq(0.8, 0.04)
    E = np.eye(4)
    E[:3, 3] = [0, 5.0, 0]  # camera far above the table plane, looking along +z (no table in view)
    table = Table((-0.1, 0.1), (-0.1, 0.1), np.ones(3))
    rgb, lab = render_frame([Mesh(v1, f1, (1, 0, 0), 1, closed=False), Mesh(v2, f2, (0, 1, 0), 2, closed=False)], K, E,
                            (64, 64), table, np.zeros((64, 64, 3)), Light(np.array([0, 0, -1.0])))
    assert lab[31, 31] == 2 and lab[31, 40] == 1 and lab[0, 0] == 0
    assert abs((lab > 0).sum() - 21 * 21) <= 2 * 21 and abs((lab == 2).sum() - 11 * 11) <= 2 * 11


# --- the one generator: grasp_motion, core rotations (no scipy), one hand-model loader -----------


def test_grasp_motion_is_a_deterministic_plausible_grasp():
    from beingh0.data.synth import HandMotion, grasp_motion

    a, b = grasp_motion(45, seed=4), grasp_motion(45, seed=4)
    assert isinstance(a, HandMotion) and a.side == "right" and a.fps == 15.0 and a.scenario == "pick_place"
    for k in ("betas", "global_orient", "hand_pose", "trans", "grasp"):
        np.testing.assert_array_equal(getattr(a, k), getattr(b, k))
        assert getattr(a, k).dtype == np.float64
    assert a.global_orient.shape == (45, 3) and a.hand_pose.shape == (45, 45) and a.trans.shape == (45, 3)
    assert not np.array_equal(grasp_motion(45, seed=5).trans, a.trans)
    assert a.grasp.min() < 0.1 and a.grasp.max() > 0.99                     # the hand opens, then closes
    for side in ("right", "left"):
        for sc in SCENARIOS:
            m = grasp_motion(30, seed=1, side=side, scenario=sc)
            lim = joint_limits(side)
            P = m.hand_pose.reshape(-1, 15, 3)
            assert (P >= lim[..., 0] - 1e-9).all() and (P <= lim[..., 1] + 1e-9).all(), (side, sc)
            kp = ManoModel.embedded(side).keypoints(*(torch.as_tensor(x) for x in (m.betas[None], m.global_orient, m.hand_pose, m.trans))).numpy()
            assert (kp[..., 2] > 0.1).all() and (np.abs(kp[..., :2] / kp[..., 2:]) < 2.0).all()  # in front of the camera, in view
            assert np.linalg.norm(np.diff(m.trans, axis=0), axis=1).max() < 0.06    # m per frame at 15 FPS
    w = a.window(10, 20)
    assert w.num_frames == 10 and np.array_equal(w.hand_pose, a.hand_pose[10:20]) and w.betas is a.betas


@pytest.mark.parametrize("kw, match", [({"frames": 1}, "frames"), ({"frames": 2.5}, "frames"), ({"side": "middle"}, "side"),
                                       ({"fps": 0}, "fps"), ({"scenario": "juggle"}, "scenario")])
def test_grasp_motion_bad_arguments(kw, match):
    from beingh0.core.errors import UserValueError
    from beingh0.data.synth import grasp_motion

    with pytest.raises(UserValueError, match=match):
        grasp_motion(**{"frames": 10, **kw})


def test_one_hand_model_loader():
    import beingh0.data.synth.generate as G
    import beingh0.data.synth.motion as M
    from beingh0.mano import hand_model

    assert G.hand_model is hand_model and M.hand_model is hand_model and not hasattr(G, "_MODELS")


def _scipy_rotations(monkeypatch):
    """Patch the generator's rotation helpers with the scipy calls it used before beingh0.core.rotations."""
    R = pytest.importorskip("scipy.spatial.transform")
    import beingh0.data.synth.motion as M

    def r2m(v):
        v = np.asarray(v, np.float64)
        return R.Rotation.from_rotvec(v.reshape(-1, 3)).as_matrix().reshape(v.shape[:-1] + (3, 3))

    def m2r(m):
        m = np.asarray(m, np.float64)
        return R.Rotation.from_matrix(m.reshape(-1, 3, 3)).as_rotvec().reshape(m.shape[:-2] + (3,))

    def slerp(R0, R1, s):  # the old per-frame Slerp
        return np.stack([R.Slerp([0, 1], R.Rotation.from_matrix(np.stack([a, b])))([x]).as_matrix()[0] for a, b, x in zip(R0, R1, s)])

    monkeypatch.setattr(M, "rotvec_to_matrix", r2m)
    monkeypatch.setattr(M, "matrix_to_rotvec", m2r)
    monkeypatch.setattr(M, "slerp_matrices", slerp)
    return r2m, m2r, slerp


def test_rotation_helpers_match_scipy(monkeypatch):
    import beingh0.data.synth.motion as M

    new = (M.rotvec_to_matrix, M.matrix_to_rotvec, M.slerp_matrices)
    r2m, m2r, slerp = _scipy_rotations(monkeypatch)
    rng = np.random.default_rng(0)
    v = rng.normal(size=(200, 3))
    v *= rng.uniform(0, np.pi - 1e-3, (200, 1)) / np.linalg.norm(v, axis=1, keepdims=True)
    v[:3] = [[0, 0, 0], [1e-9, 0, 0], [0, 0, np.pi - 1e-7]]
    np.testing.assert_allclose(new[0](v), r2m(v), atol=1e-14, rtol=0)
    np.testing.assert_allclose(new[1](r2m(v)), m2r(r2m(v)), atol=1e-12, rtol=0)
    A, B, s = r2m(v[:100]), r2m(v[100:]), rng.uniform(0, 1, 100)
    np.testing.assert_allclose(new[2](A, B, s), slerp(A, B, s), atol=1e-13, rtol=0)


def test_generator_matches_the_scipy_path(monkeypatch):
    """The episodes and grasp motions the scipy-based generator made, to float64 (float32 storage)."""
    from beingh0.data.synth import grasp_motion

    cfg = SynthConfig(seconds=3.0, frames=False)
    new_eps = [synth_episode(5, i, cfg) for i in range(5)]
    new_gm = [grasp_motion(30, seed=i, side=s, scenario=None) for i, s in enumerate(("right", "left", "right"))]
    _scipy_rotations(monkeypatch)
    old_eps = [synth_episode(5, i, cfg) for i in range(5)]
    old_gm = [grasp_motion(30, seed=i, side=s, scenario=None) for i, s in enumerate(("right", "left", "right"))]
    for a, b in zip(new_gm, old_gm):
        for k in ("betas", "global_orient", "hand_pose", "trans", "grasp"):
            np.testing.assert_allclose(getattr(a, k), getattr(b, k), atol=1e-12, rtol=0)
    for a, b in zip(new_eps, old_eps):
        assert a.text == b.text and a.meta["scenario"] == b.meta["scenario"]
        for side in ("left", "right"):
            for k in ("global_orient", "hand_pose", "betas", "trans"):
                np.testing.assert_allclose(getattr(a.hands[side], k), getattr(b.hands[side], k), atol=2e-7, rtol=0)


def test_imports_and_runs_without_scipy():
    """The runtime never imports scipy: generator, mano-parameter source and the mano demo job import
    and run in an interpreter where ``import scipy`` fails."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    import beingh0

    code = """
import sys
sys.modules["scipy"] = None  # any "import scipy..." now raises ImportError
import numpy as np
import beingh0.data.synth, beingh0.data.sources.mano_params, beingh0.data.synth.mano_demo
from beingh0.data.synth import SynthConfig, grasp_motion, synth_episode
from beingh0.data.sources.mano_params import to_beingh0
from beingh0.mano import hand_model
m = grasp_motion(12, seed=0, side="left", scenario="pour")
ep = synth_episode(0, 1, SynthConfig(seconds=0.5, frames=False))
E = np.tile(np.eye(4), (3, 1, 1)); E[:, :3, :3] = [[0, -1, 0], [1, 0, 0], [0, 0, 1]]
p = {"global_orient": np.full((3, 3), 0.3), "hand_pose": np.zeros((3, 45)), "betas": np.zeros(10), "trans": np.zeros((3, 3))}
out = to_beingh0(p, {"coords": "world"}, hand_model("right"), E)
assert np.isfinite(out["global_orient"]).all() and m.trans.shape == (12, 3) and ep.num_frames > 0
assert not any(k == "scipy" or k.startswith("scipy.") for k, v in sys.modules.items() if v is not None)
print("ok")
"""
    root = str(Path(beingh0.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stderr[-3000:]


# --- articulation from the anatomical range, gestures, speeds --------------------------------------


def test_free_articulation_covers_the_anatomical_range_within_limits():
    from beingh0.data.synth.motion import FINGERS, random_articulation

    rng = np.random.default_rng(0)
    P = np.stack([random_articulation(rng) for _ in range(600)])  # (N, 15, 3) right hand
    lim = joint_limits("right")
    assert (P >= lim[..., 0] - 1e-12).all() and (P <= lim[..., 1] + 1e-12).all()
    mcp, pip, dip = P[:, [0, 3, 6, 9], 2], P[:, [1, 4, 7, 10], 2], P[:, [2, 5, 8, 11], 2]
    # flexion from hyperextension to a fist, abduction to both sides (not a few synergies)
    assert mcp.min() < -0.2 and mcp.max() > 1.7 and pip.max() > 1.8 and dip.max() > 1.3
    assert (P[:, [0, 3, 6, 9], 1] < -0.15).mean() > 0.1 and (P[:, [0, 3, 6, 9], 1] > 0.15).mean() > 0.05
    # DIP follows PIP (coupled), but not rigidly
    r = np.corrcoef(pip.ravel(), dip.ravel())[0, 1]
    assert 0.6 < r < 0.97, r
    assert 0.35 < np.median(dip[pip > 0.8] / pip[pip > 0.8]) < 0.75
    # fingers flex independently some of the time and together some of the time
    c = np.corrcoef(mcp.T)[~np.eye(4, dtype=bool)]
    assert 0.2 < c.mean() < 0.8, c
    # thumb: opposition and flexion vary widely
    assert np.ptp(P[:, 12, 0]) > 1.0 and np.ptp(np.linalg.norm(P[:, 14], axis=-1)) > 1.0
    assert P[:, 12, 1].min() < -0.3 and P[:, 12, 1].max() > 0.6  # radial abduction: a wide thumb-index span
    assert len(FINGERS) == 5


def test_idle_hands_gesture_and_wrist_speeds_are_human():
    from beingh0.data.synth import motion as M

    gestured, speeds = 0, []
    for i in range(6):
        rng = np.random.default_rng(np.random.SeedSequence([5, i]))
        w, plans, *_ = M.build_world(rng, "pick_place", active="right")
        ph = [p for p in plans["left"].phases if p.name == "gesture"]
        if ph:
            gestured += 1
            times = np.arange(ph[0].t0, ph[0].t1, 1 / 15)
            pos, rot, pose = plans["left"].sample(times)
            assert np.ptp(pose[..., 2], axis=0).max() > 0.8  # the fingers really move
            assert pos[:, 1].min() > 0.03  # lifted off the table
            lim = joint_limits("right")
            assert (pose >= lim[..., 0] - 1e-9).all() and (pose <= lim[..., 1] + 1e-9).all()
        for p in plans.values():
            t = np.arange(0, p.t, 1 / 15)
            speeds.append(np.linalg.norm(np.diff(p.sample(t)[0], axis=0), axis=1) * 15)
    assert gestured >= 3
    s = np.concatenate(speeds)
    # hand speeds of everyday manipulation: mostly slow, peaks below ~1 m/s
    assert np.percentile(s, 50) < 0.15 and 0.1 < np.percentile(s, 95) < 0.9 and s.max() < 1.2


def test_gesture_phase_has_language():
    from beingh0.data.synth.language import PHRASES

    assert len(PHRASES["gesture"][0]) >= 2 and len(PHRASES["gesture"][1]) >= 2
