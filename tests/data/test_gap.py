"""beingh0 data gap: the synthetic-to-real measures (mocap parsing and resampling, coverage,
finger independence, DIP-PIP coupling) and the report on a small fake data folder."""
import json

import numpy as np
import pytest
import torch

from beingh0.core.errors import UserError
from beingh0.data import gap as G

NAMES = ["hand_top", "hand_left", "hand_right", "thumb_tip", "index_tip", "middle_tip", "ring_tip", "little_tip", "pillow_top"]


def _write_tsv(path, xyz, freq=100):
    """A Qualisys-style TSV export: header lines, a Frame/Time header row, mm values."""
    T = len(xyz)
    head = [f"NO_OF_FRAMES\t{T}", "NO_OF_CAMERAS\t7", f"NO_OF_MARKERS\t{len(NAMES)}", f"FREQUENCY\t{freq}",
            "MARKER_NAMES\t" + "\t".join(NAMES),
            "Frame\tTime\t" + "\t".join(f"{n} {a}" for n in NAMES for a in "XYZ")]
    rows = []
    for t in range(T):
        vals = ["" if np.isnan(v) else f"{v:.3f}" for v in xyz[t].ravel()]
        rows.append(f"{t + 1}\t{t / freq:.5f}\t" + "\t".join(vals))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(head + rows) + "\n")


def test_mocap_markers_resample_to_15_fps_in_metres_and_fill_gaps(tmp_path):
    T = 201  # 2 s at 100 Hz
    t = np.arange(T) / 100
    xyz = np.zeros((T, len(NAMES), 3))
    xyz[:, :, 0] = 1000 * 0.1 * t[:, None]  # every marker moves along x at 0.1 m/s (mm in the file)
    xyz[:, :, 1] = np.arange(len(NAMES))[None] * 10.0
    xyz[:, :, 2] = 300.0  # (an all-zero sample means "missing" in a Qualisys export)
    xyz[50:60, 3] = np.nan  # an occluded thumb tip
    xyz[70, 4] = 0.0  # Qualisys writes 0 for a missing sample
    _write_tsv(tmp_path / G.MOCAP, xyz)
    m = G.mocap_markers(tmp_path)
    tq = np.arange(0, 2.0, 1 / 15)
    assert m["tips"].shape == (len(tq), 5, 3) and m["centre"].shape == (len(tq), 3)
    np.testing.assert_allclose(m["tips"][:, :, 0], 0.1 * tq[:, None].repeat(5, 1), atol=1e-6)  # gaps filled linearly
    np.testing.assert_allclose(m["tips"][0, :, 1], np.array([3, 4, 5, 6, 7]) * 0.01, atol=1e-9)  # thumb..little
    np.testing.assert_allclose(m["centre"][:, 1], 0.01, atol=1e-9)  # mean of the three back markers (0, 10, 20 mm)
    s = G.marker_stats(m["tips"], m["centre"], [(0, len(tq))])
    np.testing.assert_allclose(s["centre_speed"], 0.1, atol=1e-6)
    np.testing.assert_allclose(s["aperture"], 0.01, atol=1e-9)


def test_mocap_not_a_qualisys_file_is_a_one_line_error(tmp_path):
    (tmp_path / G.MOCAP).parent.mkdir(parents=True)
    (tmp_path / G.MOCAP).write_text("a\tb\n1\t2\n")
    with pytest.raises(UserError, match="not a Qualisys TSV"):
        G.mocap_markers(tmp_path)


def test_coverage_is_per_finger_nearest_neighbour_distance_in_mm():
    rng = np.random.default_rng(0)
    ref = rng.normal(0, 0.05, (50, 21, 3))
    np.testing.assert_allclose(G.coverage_mm(ref[:7], ref), 0.0, atol=1e-12)
    q = ref[:5] + np.array([0.002, 0.0, 0.0])  # 2 mm away from its own posture, far from the others
    np.testing.assert_allclose(G.coverage_mm(q, ref), 2.0, atol=1e-9)
    # per finger: a posture mixing two reference postures' fingers is covered exactly
    mix = ref[0].copy()
    mix[5:9] = ref[1, 5:9]
    assert G.coverage_mm(mix[None], ref)[0] < 1e-9


def test_pose_stats_finger_independence_and_dip_pip_coupling():
    rng = np.random.default_rng(1)
    N = 400
    P = np.zeros((N, 15, 3))
    common = rng.uniform(0, 1.5, N)
    for f, (a, b, c) in G.FINGER_ROWS.items():
        if f == "thumb":
            P[:, a] = rng.normal(0, 0.3, (N, 3))
            continue
        P[:, a, 2] = common                       # all four fingers flex together
        P[:, b, 2] = 1.1 * common + rng.normal(0, 0.05, N)
        P[:, c, 2] = 0.7 * P[:, b, 2]             # DIP = 0.7 PIP exactly
    m = {"hand_pose": P.reshape(N, 45), "trans": np.cumsum(np.full((N, 3), 0.01), 0), "segments": [(0, N)]}
    s = G.pose_stats(m)
    assert s["dip_pip_corr"] == pytest.approx(1.0) and s["finger_corr_mean"] > 0.5
    np.testing.assert_allclose(s["wrist_speed"], np.sqrt(3) * 0.01 * 15)
    P[:, [0, 3, 6, 9], 2] = rng.uniform(0, 1.5, (N, 4))  # independent fingers
    P[:, [1, 4, 7, 10, 2, 5, 8, 11], 2] = 0
    assert abs(G.pose_stats({**m, "hand_pose": P.reshape(N, 45)})["finger_corr_mean"]) < 0.15


@pytest.mark.slow  # ~4 s CPU: a MANO fit, two synthetic clips and a 12-panel figure
def test_gap_report_on_a_small_data_folder(tmp_path, monkeypatch):
    from beingh0.mano import hand_model

    # a short real-looking MediaPipe sequence: the embedded hand, wrist-centred, 30 FPS
    T = 16
    hp = torch.zeros(T, 45, dtype=torch.float64)
    hp[:, 2::3] = torch.linspace(0, 0.8, T)[:, None]
    z = torch.zeros(T, 3, dtype=torch.float64)
    kp = hand_model("right").keypoints(torch.zeros(1, 10, dtype=torch.float64), z, hp, z).numpy()
    (tmp_path / G.MEDIAPIPE).parent.mkdir(parents=True)
    np.save(tmp_path / G.MEDIAPIPE, kp)
    xyz = np.random.default_rng(0).normal(0, 30, (120, len(NAMES), 3))
    _write_tsv(tmp_path / G.MOCAP, xyz)
    monkeypatch.setattr(G, "synthetic_motion", lambda episodes, seed, seconds=1.0: _tiny_synth(seed))
    s = G.gap_report(tmp_path, tmp_path / "gap.png", episodes=1, verbose=False)
    assert (tmp_path / "gap.png").stat().st_size > 10_000
    assert json.loads((tmp_path / "gap.json").read_text()) == s
    assert {"synthetic", "MediaPipe (fitted)", "mocap (markers)", "synthetic held-out"} <= set(s)
    assert s["MediaPipe (fitted)"]["fit_error_mm"] < 5 and s["MediaPipe (fitted)"]["coverage_median_mm"] >= 0
    with pytest.raises(UserError, match="png"):
        G.gap_report(tmp_path, tmp_path / "gap.jpg")
    with pytest.raises(UserError, match="no real sequence"):
        G.gap_report(tmp_path / "empty", tmp_path / "g.png", episodes=1, verbose=False)


def _tiny_synth(seed):
    from beingh0.data.synth import grasp_motion

    m = grasp_motion(20, seed=seed, scenario="pick_place")
    return {"hand_pose": m.hand_pose, "global_orient": m.global_orient, "trans": m.trans, "betas": m.betas[None],
            "segments": [(0, 20)]}
