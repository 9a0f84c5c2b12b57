"""``beingh0 mano demo``: the hand-model job on the embedded hand (no downloads; a few s on 2 CPU cores).

It lives in ``data.synth`` because it needs both the hand layer (fit, render) and the synthetic
motion generator (:func:`.motion.grasp_motion`), which sits above ``mano`` in the stack.

Poses the embedded right hand along a synthetic reach-and-grasp (:func:`.motion.grasp_motion`,
15 FPS, seeded scene and betas), computes its 21 keypoints, adds Gaussian noise, fits MANO parameters
back with ``fit_keypoints`` and reports, in millimetres: the keypoint error against the noisy
input and against the clean ground truth, and the vertex error against the ground-truth mesh.
Writes ``fit.npz`` (``FitResult``) and ``fit.png`` (ground truth vs fit) into ``out_dir``.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from ...core.errors import UserValueError
from ...mano import ManoModel, hand_model
from ...mano.fit import FitConfig, fit_keypoints
from ...mano.render import render_fit_comparison
from .motion import grasp_motion


def run_demo(out_dir="out/mano-demo", frames: int = 90, noise_mm: float = 4.0, seed: int = 0, backend=None,
             config: FitConfig | None = None, model: ManoModel | None = None, verbose: bool = True) -> dict:
    """Synthesise, corrupt, fit, measure, render. Returns the numbers printed (mm, s) and the paths."""
    if isinstance(frames, bool) or not isinstance(frames, int) or frames < 3:
        raise UserValueError(f"frames={frames!r} must be an integer >= 3 (15 FPS; the default 90 is 6 s)")
    if not (isinstance(noise_mm, (int, float)) and np.isfinite(noise_mm) and noise_mm >= 0):
        raise UserValueError(f"noise_mm={noise_mm!r} must be a finite number >= 0")
    t_start = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = model if model is not None else hand_model("right")
    cfg = config if config is not None else FitConfig(backend=backend)

    # 1. ground truth
    mo = grasp_motion(frames, seed=seed, side=model.side)
    as_t = lambda x: torch.as_tensor(x, dtype=torch.float64)
    with torch.no_grad():
        gt = model(as_t(mo.betas), as_t(mo.global_orient), as_t(mo.hand_pose), as_t(mo.trans), backend=backend)
    kp_gt, v_gt = gt.keypoints.numpy(), gt.vertices.numpy()
    # 2. noisy observation
    rng = np.random.default_rng(seed + 1)
    kp_noisy = kp_gt + rng.normal(0.0, noise_mm / 1000.0, kp_gt.shape)
    # 3. fit
    res = fit_keypoints(model, kp_noisy, config=cfg)
    with torch.no_grad():
        fit = model(as_t(res.betas), as_t(res.global_orient), as_t(res.hand_pose), as_t(res.trans), backend=backend)
    kp_fit, v_fit = fit.keypoints.numpy(), fit.vertices.numpy()
    # 4. numbers (mm)
    mm = lambda a, b: float(np.linalg.norm(a - b, axis=-1).mean() * 1000.0)
    numbers = {
        "frames": frames,
        "noise_mm": float(noise_mm),
        "input_noise_measured_mm": mm(kp_noisy, kp_gt),
        "kp_err_vs_input_mm": mm(kp_fit, kp_noisy),
        "kp_err_vs_truth_mm": mm(kp_fit, kp_gt),
        "vertex_err_vs_truth_mm": mm(v_fit, v_gt),
        "fit_time_s": res.time_s,
    }
    # 5. outputs
    params_path = res.save(out / "fit.npz")
    idx = np.linspace(0, frames - 1, 4).round().astype(int)
    png = render_fit_comparison(v_fit[idx], model.faces.numpy(), kp_fit[idx], kp_noisy[idx], out / "fit.png",
                                titles=[f"frame {i} ({i / mo.fps:.1f} s)" for i in idx], verts_ref=v_gt[idx],
                                labels=("fit: mesh + keypoints", "truth mesh + noisy input"))
    numbers.update(total_time_s=time.perf_counter() - t_start, params_path=str(params_path), render_path=str(png))
    if verbose:
        n = numbers
        print(f"beingh0 demo: embedded hand (not MANO), {frames} frames at 15 FPS, keypoint noise {noise_mm:g} mm (std per axis)")
        print("  metric                                   |     mm")
        print(f"  input noise (mean 3D distance)           | {n['input_noise_measured_mm']:6.2f}")
        print(f"  fitted keypoints vs noisy input          | {n['kp_err_vs_input_mm']:6.2f}")
        print(f"  fitted keypoints vs clean ground truth   | {n['kp_err_vs_truth_mm']:6.2f}")
        print(f"  fitted vertices vs ground-truth mesh     | {n['vertex_err_vs_truth_mm']:6.2f}")
        print(f"  fit time {n['fit_time_s']:.1f} s, total {n['total_time_s']:.1f} s")
        print(f"  wrote {params_path} and {png}")
    return numbers
