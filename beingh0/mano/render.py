"""Matplotlib hand rendering (Agg, no screen): shaded meshes, keypoint skeletons, fit comparisons.

Meshes are drawn as one ``Poly3DCollection`` with Lambert shading computed here (a headlight from
the camera plus a key light), which takes ~0.1 s per 1538-face hand; matplotlib's own
``plot_trisurf`` shading was slower and flatter. Each frame gets its own view, looking at the hand
obliquely from its back (the palm normal sets the camera), and equal axes, shared by the panels
of that frame so mesh and keypoints can be compared.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core.constants import KEYPOINT_PARENTS

#: Skeleton colour per finger: wrist links / thumb / index / middle / ring / pinky.
FINGER_COLOURS = ("#444444", "#d62728", "#ff7f0e", "#2ca02c", "#1f77b4", "#9467bd")


def finger_of(k: int) -> int:
    """Index into :data:`FINGER_COLOURS` of keypoint ``k`` (Being-H0 21-keypoint order): 0 wrist,
    1 thumb, 2 index, 3 middle, 4 ring, 5 pinky."""
    return 0 if k == 0 else 1 + (k - 1) // 4


def pyplot_agg():
    """``matplotlib.pyplot`` on a file backend (switches an interactive backend to Agg): for code
    that writes PNGs on machines without a screen (renders, alignment and data previews)."""
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "pdf", "svg", "ps", "cairo"):
        matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt




def _np(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _view_for(points: np.ndarray) -> tuple[float, float]:
    """(elev, azim) in degrees looking at a hand (21 keypoints) from above its back, obliquely."""
    w, i, p, m = points[0], points[5], points[17], points[9]
    n = np.cross(i - w, p - w)               # palm side of a right hand (back side of a left one)
    n = n / max(np.linalg.norm(n), 1e-12)
    f = (m - w) / max(np.linalg.norm(m - w), 1e-12)
    d = -0.8 * n + 0.45 * np.cross(f, n) - 0.35 * f   # camera direction: back of hand, to the side
    d = d / np.linalg.norm(d)
    return float(np.degrees(np.arcsin(np.clip(d[2], -1, 1)))), float(np.degrees(np.arctan2(d[1], d[0])))


def _set_equal(ax, pts: np.ndarray, pad: float = 0.08) -> None:
    lo, hi = np.nanmin(pts, 0), np.nanmax(pts, 0)
    c, r = (lo + hi) / 2, (hi - lo).max() / 2 * (1 + pad) + 1e-3
    ax.set_xlim(c[0] - r, c[0] + r)
    ax.set_ylim(c[1] - r, c[1] + r)
    ax.set_zlim(c[2] - r, c[2] + r)
    ax.set_box_aspect((1, 1, 1), zoom=1.35)


def _shade(tris: np.ndarray, view_dir: np.ndarray, base=(0.93, 0.74, 0.62)) -> np.ndarray:
    """Lambert shading of triangles (F, 3, 3) under a headlight along ``view_dir`` plus a key light."""
    n = np.cross(tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0])
    n = n / np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-12)
    key = view_dir + np.array([0.3, 0.3, 0.6])
    key = key / np.linalg.norm(key)
    light = 0.3 + 0.5 * np.abs(n @ view_dir) + 0.25 * np.clip(n @ key, 0, None)
    rgb = np.clip(np.asarray(base)[None] * light[:, None], 0, 1)
    return np.concatenate([rgb, np.ones((len(rgb), 1))], 1)


def _camera_dir(elev: float, azim: float) -> np.ndarray:
    e, a = np.radians(elev), np.radians(azim)
    return np.array([np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.sin(e)])


def draw_skeleton(ax, keypoints, *, alpha: float = 1.0, lw: float = 2.0, marker_size: float = 10.0, style: str = "-"):
    """Draw 21 keypoints (21, 3) as a skeleton (KEYPOINT_PARENTS), one colour per finger."""
    kp = _np(keypoints)
    for k, p in enumerate(KEYPOINT_PARENTS):
        if p < 0 or not (np.isfinite(kp[k]).all() and np.isfinite(kp[p]).all()):
            continue
        seg = kp[[p, k]]
        ax.plot(seg[:, 0], seg[:, 1], seg[:, 2], style, color=FINGER_COLOURS[finger_of(k)], lw=lw, alpha=alpha,
                zorder=5)
    ok = np.isfinite(kp).all(-1)
    cols = [FINGER_COLOURS[finger_of(k)] for k in range(len(kp)) if ok[k]]
    ax.scatter(kp[ok, 0], kp[ok, 1], kp[ok, 2], c=cols, s=marker_size, alpha=alpha, depthshade=False, zorder=6)


def draw_mesh(ax, verts, faces, view: tuple[float, float], *, alpha: float = 0.45, base=(0.93, 0.74, 0.62)):
    """Draw a shaded, semi-transparent mesh (V, 3) with faces (F, 3) into a 3D axes."""
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    v, f = _np(verts), np.asarray(_np(faces), dtype=np.int64)
    tris = v[f]
    coll = Poly3DCollection(tris, facecolors=_shade(tris, _camera_dir(*view), base), edgecolors="none", alpha=alpha,
                            zorder=1)
    ax.add_collection3d(coll)


def _axes(fig, *args):
    ax = fig.add_subplot(*args, projection="3d")
    ax.computed_zorder = False  # draw order = zorder: mesh first, skeleton always on top of it
    return ax


def _panel(ax, title, view, pts):
    ax.view_init(elev=view[0], azim=view[1])
    _set_equal(ax, pts)
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()


def render_hand(verts, faces, path, keypoints=None, *, title: str = "", view=None, dpi: int = 110) -> Path:
    """Render one mesh (V, 3) (with its 21-keypoint skeleton if given) to a PNG."""
    plt = pyplot_agg()
    v = _np(verts)
    kp = _np(keypoints) if keypoints is not None else None
    view = view or (_view_for(kp) if kp is not None else (20.0, -60.0))
    fig = plt.figure(figsize=(4.2, 4.2))
    ax = _axes(fig, 111)
    draw_mesh(ax, v, faces, view)
    if kp is not None:
        draw_skeleton(ax, kp)
    _panel(ax, title, view, v)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return path


def render_fit_comparison(verts, faces, kp_fit, kp_input, path, titles=None, *, verts_ref=None,
                          labels=("fit: mesh + keypoints", "input keypoints"), dpi: int = 100) -> Path:
    """N frames side by side, one column per frame: top, the fitted mesh with its keypoint skeleton
    (input keypoints dashed grey for reference); bottom, the input keypoints (colour per finger)
    and, if ``verts_ref`` (N, V, 3) is given, the reference mesh (e.g. the ground truth).

    Args:
        verts (N, V, 3), faces (F, 3), kp_fit (N, 21, 3), kp_input (N, 21, 3; NaN = missing):
            metres, numpy or torch. titles: N strings.
    Returns the PNG path.
    """
    plt = pyplot_agg()
    V, KF, KI = _np(verts), _np(kp_fit), _np(kp_input)
    if V.ndim == 2:
        V, KF, KI = V[None], KF[None], KI[None]
    N = V.shape[0]
    if KF.shape != (N, 21, 3) or KI.shape != (N, 21, 3):
        raise ValueError(f"kp_fit and kp_input must be ({N}, 21, 3) to match verts {V.shape}, got {KF.shape} and {KI.shape}")
    R = _np(verts_ref) if verts_ref is not None else None
    if R is not None and R.ndim == 2:
        R = R[None]
    titles = list(titles) if titles is not None else [f"frame {i}" for i in range(N)]
    if len(titles) != N:
        raise ValueError(f"titles has {len(titles)} entries for {N} frames; pass one per frame")
    fig = plt.figure(figsize=(3.3 * N, 6.6))
    for i in range(N):
        view = _view_for(KF[i])
        pts = np.concatenate([V[i], KI[i][np.isfinite(KI[i]).all(-1)]] + ([R[i]] if R is not None else []))
        ax = _axes(fig, 2, N, i + 1)
        draw_mesh(ax, V[i], faces, view)
        draw_skeleton(ax, KF[i], lw=1.8)
        _panel(ax, f"{titles[i]}\n{labels[0]}", view, pts)
        ax = _axes(fig, 2, N, N + i + 1)
        if R is not None:
            draw_mesh(ax, R[i], faces, view, base=(0.62, 0.74, 0.93))
        draw_skeleton(ax, KI[i], lw=1.8)
        _panel(ax, labels[1], view, pts)
    fig.subplots_adjust(left=0.01, right=0.99, top=0.93, bottom=0.01, wspace=0.02, hspace=0.08)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
