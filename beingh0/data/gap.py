"""The synthetic-to-real gap of hand motion: ``beingh0 data gap`` (a PNG report and a JSON summary).

Compares the distribution of the synthetic hand motion (:mod:`beingh0.data.synth`, both hands in
the right-hand convention of :mod:`beingh0.motion.hands`) with every real sequence in the shared
data folder:

- **MediaPipe** (``dex_retargeting_human_hand/human_joint_right.npy``, 621 frames at 30 FPS, 21
  keypoints in a wrist-aligned frame): fitted to MANO with the project's fitter
  (:func:`beingh0.mano.fit.fit_keypoints`, default :class:`~beingh0.mano.fit.FitConfig`, the same
  fit the tokenizer's real evaluation uses), then taken at 15 FPS (every second frame). Compared
  on MANO parameters and keypoints. Its wrist does not move (the keypoints are wrist-aligned).
- **Mocap** (``hand_embodiment_mocap/recording.tsv``, 60 s at 100 Hz, Qualisys markers in mm):
  *not* fitted to MANO. The recording has 13 hand markers (3 on the back of the hand, a tip and a
  middle-phalanx marker per finger), not 21 joints, so joint angles cannot be read off it
  honestly. It is resampled to 15 FPS (linear interpolation in time; occluded samples are filled
  from their neighbours) and compared on marker-level measures computed the same way on the
  synthetic keypoints: the speed of the hand's centre (mean of the three back markers; on
  keypoints the mean of wrist and the index, middle and pinky MCPs), the thumb-index fingertip
  aperture, each fingertip's distance to that centre, and finger independence from those
  distances. The back markers sit about 1-2 cm dorsal of the keypoints' centre, so tip distances
  differ by an offset; correlations and speeds do not depend on it.

Measures: per-joint flexion ranges (1st-99th percentile) and histograms, the DIP-PIP relation,
finger independence (correlation between the fingers' flexions), wrist speeds, hand postures
(a PCA of wrist-relative keypoints at zero shape and orientation), hand shapes (betas), and
**coverage**: the distance (mm, mean per keypoint) from each real posture to its nearest synthetic
posture, next to the same distance for held-out synthetic postures (another seed).

Nothing here is used for training: the real sequences are evaluation data only.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ..core.errors import UserFileError, UserValueError

__all__ = ["MEDIAPIPE", "MOCAP", "synthetic_motion", "mediapipe_motion", "mocap_markers", "pose_stats",
           "marker_stats", "coverage_mm", "gap_report"]

MEDIAPIPE = Path("dex_retargeting_human_hand") / "human_joint_right.npy"
MOCAP = Path("hand_embodiment_mocap") / "recording.tsv"
FPS = 15.0
FINGERS5 = ("thumb", "index", "middle", "ring", "pinky")
#: hand_pose rows (MANO order) of each finger's three joints, in :data:`FINGERS5` order.
FINGER_ROWS = {"thumb": (12, 13, 14), "index": (0, 1, 2), "middle": (3, 4, 5), "ring": (9, 10, 11), "pinky": (6, 7, 8)}
#: 21-keypoint ids: fingertips (thumb .. pinky) and the keypoints whose mean is the hand centre.
TIPS = (4, 8, 12, 16, 20)
CENTRE = (0, 5, 9, 17)
MOCAP_TIPS = ("thumb_tip", "index_tip", "middle_tip", "ring_tip", "little_tip")
MOCAP_BACK = ("hand_top", "hand_left", "hand_right")
JOINT_NAMES = [f"{f} {j}" for f in ("index", "middle", "pinky", "ring") for j in ("MCP", "PIP", "DIP")] + \
              ["thumb CMC", "thumb MCP", "thumb IP"]


# ------------------------------------------------------------------------------------------------
# the motion sets


def synthetic_motion(episodes: int = 24, seed: int = 2, seconds: float = 6.0) -> dict:
    """Both hands of ``episodes`` motion-only synthetic episodes (``synth_episode(seed, i)``),
    right-hand convention, 15 FPS: {"hand_pose" (N, 45), "global_orient", "trans" (N, 3),
    "betas" (E, 10), "segments": list of (start, stop) rows of each hand track}."""
    from ..motion.hands import to_right_hand
    from .synth import SynthConfig, synth_episode

    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise UserValueError(f"episodes={episodes!r} must be an integer >= 1")
    cols = {"hand_pose": [], "global_orient": [], "trans": []}
    betas, segs, n = [], [], 0
    for i in range(episodes):
        ep = synth_episode(seed, i, SynthConfig(seconds=seconds, frames=False))
        for side, h in ep.hands.items():
            p = to_right_hand({k: torch.as_tensor(getattr(h, k)) for k in ("global_orient", "hand_pose", "trans")}, side)
            for k in cols:
                cols[k].append(p[k].numpy())
            segs.append((n, n + len(h.trans)))
            n += len(h.trans)
        betas.append(np.asarray(ep.hands["right"].betas))
    out = {k: np.concatenate(v) for k, v in cols.items()}
    out.update(betas=np.stack(betas), segments=segs)
    return out


def mediapipe_motion(data_dir, verbose: bool = False) -> dict | None:
    """The MediaPipe sequence fitted to MANO (default fit), at 15 FPS; None when absent."""
    from ..mano import hand_model
    from ..mano.fit import FitConfig, fit_keypoints

    path = Path(data_dir) / MEDIAPIPE
    if not path.is_file():
        return None
    kp = np.load(path, allow_pickle=False)
    res = fit_keypoints(hand_model("right"), kp, config=FitConfig())
    if verbose:
        print(f"MediaPipe: fitted {res.num_frames} frames to MANO, mean keypoint error {res.mean_error_mm:.2f} mm")
    sl = slice(None, None, 2)  # 30 -> 15 FPS
    return {"hand_pose": np.asarray(res.hand_pose)[sl], "global_orient": np.asarray(res.global_orient)[sl],
            "trans": np.asarray(res.trans)[sl], "betas": np.asarray(res.betas).reshape(-1, 10)[:1],
            "segments": [(0, len(np.asarray(res.trans)[sl]))], "fit_error_mm": float(res.mean_error_mm)}


def mocap_markers(data_dir) -> dict | None:
    """The mocap recording's hand markers (metres) resampled from 100 Hz to 15 FPS: {"tips" (T, 5,
    3) thumb .. little, "centre" (T, 3) mean of the three back-of-hand markers}; None when absent."""
    path = Path(data_dir) / MOCAP
    if not path.is_file():
        return None
    lines = path.read_text().splitlines()
    try:
        freq = float(next(ln.split("\t")[1] for ln in lines if ln.startswith("FREQUENCY")))
        names = next(ln.split("\t")[1:] for ln in lines if ln.startswith("MARKER_NAMES"))
        start = next(i for i, ln in enumerate(lines) if ln.startswith("Frame\t")) + 1
    except StopIteration:
        raise UserFileError(f"{path} is not a Qualisys TSV export (no FREQUENCY / MARKER_NAMES / Frame header)") from None
    rows = [ln.split("\t") for ln in lines[start:] if ln.strip()]
    width = 2 + 3 * len(names)
    data = np.full((len(rows), width), np.nan)
    for i, r in enumerate(rows):
        vals = [float(v) if v.strip() else np.nan for v in r[:width]]
        data[i, :len(vals)] = vals
    xyz = data[:, 2:].reshape(len(rows), len(names), 3) / 1000.0
    xyz[np.all(xyz == 0, axis=-1)] = np.nan
    t = np.arange(len(rows)) / freq
    tq = np.arange(0.0, t[-1], 1.0 / FPS)
    idx = {n: i for i, n in enumerate(names)}
    missing = [n for n in MOCAP_TIPS + MOCAP_BACK if n not in idx]
    if missing:
        raise UserFileError(f"{path} lacks the markers {missing}")

    def resample(n):
        out = np.empty((len(tq), 3))
        for a in range(3):
            v = xyz[:, idx[n], a]
            ok = np.isfinite(v)
            out[:, a] = np.interp(tq, t[ok], v[ok])
        return out

    return {"tips": np.stack([resample(n) for n in MOCAP_TIPS], 1),
            "centre": np.mean([resample(n) for n in MOCAP_BACK], 0)}


# ------------------------------------------------------------------------------------------------
# measures


def keypoints(m: dict, *, shape_and_orient: bool = True) -> np.ndarray:
    """(N, 21, 3) keypoints of a motion set (embedded right hand); ``shape_and_orient=False``:
    wrist-relative postures at zero betas and orientation (articulation only)."""
    from ..mano import hand_model

    hp = torch.as_tensor(m["hand_pose"], dtype=torch.float64)
    N = len(hp)
    model = hand_model("right")
    if not shape_and_orient:
        z = torch.zeros(N, 3, dtype=torch.float64)
        return model.keypoints(torch.zeros(1, 10, dtype=torch.float64), z, hp, z).numpy()
    out = np.empty((N, 21, 3))
    for j, (a, b) in enumerate(m["segments"]):
        bet = torch.as_tensor(m["betas"][min(j // 2, len(m["betas"]) - 1)], dtype=torch.float64)[None]
        out[a:b] = model.keypoints(bet, torch.as_tensor(m["global_orient"][a:b], dtype=torch.float64), hp[a:b],
                                   torch.as_tensor(m["trans"][a:b], dtype=torch.float64)).numpy()
    return out


def _speeds(x: np.ndarray, segments) -> np.ndarray:
    return np.concatenate([np.linalg.norm(np.diff(x[a:b], axis=0), axis=-1) * FPS for a, b in segments if b - a > 1])


def _finger_flexion(hp: np.ndarray) -> np.ndarray:
    """(N, 5) summed flexion (rad) per finger, thumb .. pinky (the thumb: norm of its rotations)."""
    P = hp.reshape(-1, 15, 3)
    out = [np.linalg.norm(P[:, list(FINGER_ROWS["thumb"])], axis=-1).sum(1)]
    out += [P[:, list(FINGER_ROWS[f]), 2].sum(1) for f in FINGERS5[1:]]
    return np.stack(out, 1)


def _corr(x: np.ndarray) -> np.ndarray:
    x = x - x.mean(0)
    s = np.maximum(x.std(0), 1e-9)
    return (x / s).T @ (x / s) / len(x)


def _offdiag(c: np.ndarray) -> float:
    return float(c[~np.eye(len(c), dtype=bool)].mean())


def pose_stats(m: dict) -> dict:
    """MANO-parameter measures of a motion set (right-hand convention)."""
    P = m["hand_pose"].reshape(-1, 15, 3)
    flex = P[..., 2]
    thumb = np.linalg.norm(P[:, 12:], axis=-1)
    ang = np.concatenate([flex[:, :12], thumb], 1)  # the thumb's joint angle: norm of its rotation
    pip = flex[:, [1, 4, 7, 10]].ravel()
    dip = flex[:, [2, 5, 8, 11]].ravel()
    fing = _finger_flexion(m["hand_pose"])
    c = _corr(fing[:, 1:])
    ws = _speeds(m["trans"], m["segments"])
    return {"angles": ang, "p01": np.percentile(ang, 1, 0), "p99": np.percentile(ang, 99, 0),
            "mcp_abduction": P[:, [0, 3, 6, 9], 1].ravel(), "pip": pip, "dip": dip,
            "dip_pip_corr": float(np.corrcoef(pip, dip)[0, 1]) if pip.std() > 0 and dip.std() > 0 else float("nan"),
            "finger_corr": _corr(fing), "finger_corr_mean": _offdiag(c), "wrist_speed": ws}


def marker_stats(tips: np.ndarray, centre: np.ndarray, segments) -> dict:
    """Marker-level measures from fingertips (N, 5, 3) and a hand centre (N, 3), metres."""
    d = np.linalg.norm(tips - centre[:, None], axis=-1)
    return {"tip_dist": d, "aperture": np.linalg.norm(tips[:, 0] - tips[:, 1], axis=-1),
            "centre_speed": _speeds(centre, segments), "tip_corr": _corr(d), "tip_corr_mean": _offdiag(_corr(d[:, 1:]))}


def marker_stats_of(kp: np.ndarray, segments) -> dict:
    return marker_stats(kp[:, list(TIPS)], kp[:, list(CENTRE)].mean(1), segments)


#: 21-keypoint ids of each finger (base .. tip), thumb .. pinky.
FINGER_KP = ((1, 2, 3, 4), (5, 6, 7, 8), (9, 10, 11, 12), (13, 14, 15, 16), (17, 18, 19, 20))


def coverage_mm(query: np.ndarray, ref: np.ndarray, chunk: int = 256) -> np.ndarray:
    """Per query posture (N, 21, 3, wrist-relative): for each finger, the mean per-keypoint
    distance (mm) of its four keypoints to the nearest same-finger configuration in ``ref``
    (M, 21, 3); averaged over the five fingers. Per finger, because whole-hand nearest neighbours
    in 63 dimensions need far more reference postures than any set here has (even 6,000 postures
    drawn from the full anatomical range leave real hands ~9 mm from their nearest)."""
    out = np.zeros(len(query))
    for ids in FINGER_KP:
        qf, rf = query[:, list(ids)], ref[:, list(ids)]
        q, r = qf.reshape(len(qf), -1), rf.reshape(len(rf), -1)
        for i in range(0, len(q), chunk):
            j = ((q[i:i + chunk, None] - r[None]) ** 2).sum(-1).argmin(1)
            out[i:i + chunk] += np.linalg.norm(qf[i:i + chunk] - rf[j], axis=-1).mean(-1) * 1000 / len(FINGER_KP)
    return out


# ------------------------------------------------------------------------------------------------
# the report


def gap_report(data_dir, png, *, episodes: int = 24, seed: int = 2, json_path=None, verbose: bool = True) -> dict:
    """``beingh0 data gap``: measure the synthetic-to-real gap, write the PNG report ``png`` (and
    the JSON summary ``json_path``, default next to it), print a table. Returns the summary."""
    png = Path(png)
    if png.suffix.lower() != ".png":
        raise UserValueError(f"--png {png}: the report is a .png file")
    syn = synthetic_motion(episodes, seed)
    held = synthetic_motion(max(2, episodes // 6), seed + 1000)
    mp = mediapipe_motion(data_dir, verbose=verbose)
    mc = mocap_markers(data_dir)
    if mp is None and mc is None:
        raise UserFileError(f"no real sequence under {data_dir} (expected {MEDIAPIPE} and/or {MOCAP}); "
                            "point --data-dir to the shared data folder")
    sets = {"synthetic": syn} | ({"MediaPipe (fitted)": mp} if mp is not None else {})
    ps = {k: pose_stats(v) for k, v in sets.items()}
    kp_full = {k: keypoints(v) for k, v in sets.items()}
    ms = {k: marker_stats_of(kp_full[k], v["segments"]) for k, v in sets.items()}
    if mc is not None:
        ms["mocap (markers)"] = marker_stats(mc["tips"], mc["centre"], [(0, len(mc["centre"]))])
    post = {k: keypoints(v, shape_and_orient=False) for k, v in sets.items()}
    rng = np.random.default_rng(0)
    ref = post["synthetic"][rng.choice(len(post["synthetic"]), min(6000, len(post["synthetic"])), replace=False)]
    cov = {"synthetic held-out": coverage_mm(keypoints(held, shape_and_orient=False)[::3], ref)}
    if mp is not None:
        cov["MediaPipe (fitted)"] = coverage_mm(post["MediaPipe (fitted)"], ref)

    summary = {"synthetic": {"episodes": episodes, "seed": seed, "frames": len(syn["trans"])}}
    for k, s in ps.items():
        summary.setdefault(k, {}).update({
            "flexion_p01_p99_rad": {n: [round(float(a), 3), round(float(b), 3)] for n, a, b in zip(JOINT_NAMES, s["p01"], s["p99"])},
            "dip_pip_corr": round(s["dip_pip_corr"], 3), "finger_flexion_corr_mean": round(s["finger_corr_mean"], 3),
            "wrist_speed_median_m_s": round(float(np.median(s["wrist_speed"])), 4),
            "wrist_speed_p95_m_s": round(float(np.percentile(s["wrist_speed"], 95)), 4)})
    for k, s in ms.items():
        summary.setdefault(k, {}).update({
            "hand_centre_speed_median_m_s": round(float(np.median(s["centre_speed"])), 4),
            "hand_centre_speed_p95_m_s": round(float(np.percentile(s["centre_speed"], 95)), 4),
            "thumb_index_aperture_p05_p95_mm": [round(float(np.percentile(s["aperture"], q)) * 1000, 1) for q in (5, 95)],
            "tip_distance_corr_mean": round(s["tip_corr_mean"], 3)})
    for k, c in cov.items():
        summary.setdefault(k, {}).update({"coverage_median_mm": round(float(np.median(c)), 2),
                                          "coverage_p90_mm": round(float(np.percentile(c, 90)), 2)})
    if mp is not None:
        summary["MediaPipe (fitted)"]["fit_error_mm"] = round(mp["fit_error_mm"], 2)
        lo, hi = ps["synthetic"]["p01"], ps["synthetic"]["p99"]
        a = ps["MediaPipe (fitted)"]["angles"]
        summary["MediaPipe (fitted)"]["frac_angles_outside_synthetic_p01_p99"] = round(float(((a < lo) | (a > hi)).mean()), 4)

    _plot(png, ps, ms, cov, post, sets)
    jp = Path(json_path) if json_path is not None else png.with_suffix(".json")
    jp.write_text(json.dumps(summary, indent=1))
    if verbose:
        print(format_summary(summary))
        print(f"report: {png}  summary: {jp}")
    return summary


def format_summary(s: dict) -> str:
    rows = [("set", "finger coverage med/p90 (mm)", "finger corr", "DIP-PIP corr", "centre speed med/p95 (m/s)", "aperture p5-p95 (mm)")]
    for k, v in s.items():
        if not isinstance(v, dict) or k == "synthetic" and "coverage_median_mm" not in v and "tip_distance_corr_mean" not in v:
            continue
        cov = f"{v['coverage_median_mm']:.1f} / {v['coverage_p90_mm']:.1f}" if "coverage_median_mm" in v else "-"
        fc = " ".join(f"{lab}{v[key]:.2f}" for lab, key in (("", "finger_flexion_corr_mean"), ("tips ", "tip_distance_corr_mean"))
                      if key in v) or "-"
        dp = f"{v['dip_pip_corr']:.2f}" if "dip_pip_corr" in v else "-"
        sp = f"{v['hand_centre_speed_median_m_s']:.3f} / {v['hand_centre_speed_p95_m_s']:.3f}" if "hand_centre_speed_median_m_s" in v else "-"
        ap = "{:.0f}-{:.0f}".format(*v["thumb_index_aperture_p05_p95_mm"]) if "thumb_index_aperture_p05_p95_mm" in v else "-"
        rows.append((k, cov, fc, dp, sp, ap))
    w = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w[i]) for i, c in enumerate(r)) for r in rows)


def _plot(png, ps, ms, cov, post, sets):
    from ..mano.fit import joint_limits
    from ..mano.render import pyplot_agg

    plt = pyplot_agg()
    col = {"synthetic": "tab:blue", "MediaPipe (fitted)": "tab:orange", "mocap (markers)": "tab:green",
           "synthetic held-out": "tab:cyan"}
    fig, axs = plt.subplots(3, 4, figsize=(20, 13.5))
    # 1. flexion ranges per joint
    ax = axs[0, 0]
    lim = joint_limits("right")[..., 2, :]
    y = np.arange(15)
    ax.barh(y, lim[:, 1] - lim[:, 0], left=lim[:, 0], height=0.8, color="0.88", label="joint limits (flexion)")
    for j, (k, s) in enumerate(ps.items()):
        ax.barh(y + (j - 0.5) * 0.3, s["p99"] - s["p01"], left=s["p01"], height=0.28, color=col[k], label=f"{k} p1-p99")
    ax.set_yticks(y, JOINT_NAMES, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("flexion (rad; thumb: joint angle)")
    ax.set_title("joint-angle ranges")
    ax.legend(fontsize=7)
    # 2-4. histograms: MCP, PIP, DIP flexion (four fingers pooled), MCP abduction
    for ax, (title, get) in zip([axs[0, 1], axs[0, 2], axs[0, 3], axs[1, 0]], [
            ("MCP flexion (4 fingers)", lambda s: s["angles"][:, [0, 3, 6, 9]].ravel()),
            ("PIP flexion (4 fingers)", lambda s: s["pip"]), ("DIP flexion (4 fingers)", lambda s: s["dip"]),
            ("MCP abduction (4 fingers)", lambda s: s["mcp_abduction"])]):
        for k, s in ps.items():
            ax.hist(get(s), bins=40, density=True, histtype="step", lw=1.8, color=col[k], label=k)
        ax.set_title(title)
        ax.set_xlabel("rad")
        ax.legend(fontsize=7)
    # 5. DIP vs PIP
    ax = axs[1, 1]
    for k, s in ps.items():
        n = len(s["pip"])
        i = np.random.default_rng(0).choice(n, min(n, 3000), replace=False)
        ax.scatter(s["pip"][i], s["dip"][i], s=3, alpha=0.35, color=col[k], label=f"{k} (r={s['dip_pip_corr']:.2f})")
    ax.set_xlabel("PIP flexion (rad)")
    ax.set_ylabel("DIP flexion (rad)")
    ax.set_title("DIP-PIP coupling")
    ax.legend(fontsize=7, markerscale=4)
    # 6-8. finger independence: flexion correlation (MANO sets), tip-distance correlation (mocap)
    mats = [(f"{k}: flexion corr (mean off-diag {s['finger_corr_mean']:.2f}, 4 fingers)", s["finger_corr"]) for k, s in ps.items()]
    if "mocap (markers)" in ms:
        s = ms["mocap (markers)"]
        mats.append((f"mocap: tip-to-hand distance corr (mean {s['tip_corr_mean']:.2f}; synthetic "
                     f"{ms['synthetic']['tip_corr_mean']:.2f})", s["tip_corr"]))
    for ax, (title, c) in zip([axs[1, 2], axs[1, 3], axs[2, 0]], mats):
        im = ax.imshow(c, vmin=-1, vmax=1, cmap="coolwarm")
        ax.set_xticks(range(5), FINGERS5, fontsize=7)
        ax.set_yticks(range(5), FINGERS5, fontsize=7)
        for (a, b), v in np.ndenumerate(c):
            ax.text(b, a, f"{v:.2f}", ha="center", va="center", fontsize=7)
        ax.set_title(title, fontsize=8)
    for ax in axs.ravel()[6 + len(mats):9]:
        ax.axis("off")
    # 9. hand-centre speed
    ax = axs[2, 1]
    for k, s in ms.items():
        if k == "MediaPipe (fitted)":
            continue  # wrist-aligned keypoints: no wrist motion to compare
        ax.hist(np.clip(s["centre_speed"], 0, 1.0), bins=50, density=True, histtype="step", lw=1.8, color=col[k],
                label=f"{k} (median {np.median(s['centre_speed']):.3f} m/s)")
    ax.set_xlabel("hand-centre speed (m/s, clipped at 1)")
    ax.set_title("wrist / hand speed (MediaPipe is wrist-aligned: omitted)")
    ax.legend(fontsize=7)
    # 10. thumb-index aperture
    ax = axs[2, 2]
    for k, s in ms.items():
        ax.hist(s["aperture"] * 1000, bins=40, density=True, histtype="step", lw=1.8, color=col[k], label=k)
    ax.set_xlabel("thumb-index fingertip distance (mm)")
    ax.set_title("opposition / aperture")
    ax.legend(fontsize=7)
    # 11. postures: PCA of wrist-relative keypoints at zero shape, coverage distances
    ax = axs[2, 3]
    X = post["synthetic"].reshape(len(post["synthetic"]), -1)
    mu = X.mean(0)
    _, _, Vt = np.linalg.svd(X[::4] - mu, full_matrices=False)
    for k, p in post.items():
        Z = (p.reshape(len(p), -1) - mu) @ Vt[:2].T
        i = np.random.default_rng(0).choice(len(Z), min(len(Z), 4000), replace=False)
        c = cov.get(k)
        lab = k + (f" (nearest synthetic finger: median {np.median(c):.1f} mm)" if c is not None else "")
        ax.scatter(Z[i, 0], Z[i, 1], s=3, alpha=0.35, color=col[k], label=lab)
    c = cov["synthetic held-out"]
    ax.set_title(f"hand postures, PCA (held-out synthetic to nearest: median {np.median(c):.1f} mm)", fontsize=8)
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.legend(fontsize=7, markerscale=4)
    # shapes: betas, in the text of the suptitle
    b = sets["synthetic"]["betas"]
    txt = f"synthetic betas: per-component std {np.round(b.std(0).astype(np.float64), 2).tolist()}"
    if "MediaPipe (fitted)" in sets:
        txt += f"\nMediaPipe fitted betas {np.round(sets['MediaPipe (fitted)']['betas'][0].astype(np.float64), 2).tolist()}"
    fig.suptitle("synthetic vs real hand motion (beingh0 data gap)\n" + txt, fontsize=10)
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.05, top=0.9, wspace=0.3, hspace=0.3)
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=72)
    plt.close(fig)
