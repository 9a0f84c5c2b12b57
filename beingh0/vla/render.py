"""Drawing generated hand motion over the scene image: a PNG strip and an mp4.

The generated MANO parameters (camera frame, :func:`beingh0.vla.blocks.decode_hands`) go through the
embedded hand model to the 21 keypoints, which are projected with pinhole intrinsics and drawn by
the one frame painter of ``beingh0 data show`` (:func:`beingh0.data.show.draw_frame`: finger
colours, per-hand joint colour, caption band); the mp4 goes through :func:`beingh0.data.video.encode_mp4`.

Intrinsics: the VLA is trained on images aligned to Being-H0's virtual camera (fx = fy = 736.6 px on
1920 x 1080, 105 degrees horizontal field of view); an image without known intrinsics is taken to
have that field of view (:func:`default_intrinsics`: focal scaled to the image width, principal
point at the centre).
"""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

__all__ = ["default_intrinsics", "hand_keypoints", "render_generation"]

#: Being-H0's virtual camera: focal length over image width (736.6339 px / 1920 px).
VIRTUAL_FOCAL_PER_WIDTH = 736.6339 / 1920.0


def default_intrinsics(width: int, height: int) -> tuple[float, float, float, float]:
    """(fx, fy, cx, cy) of an image taken as Being-H0's virtual camera (module docstring)."""
    f = VIRTUAL_FOCAL_PER_WIDTH * width
    return f, f, width / 2.0, height / 2.0


def hand_keypoints(mano: dict[str, dict]) -> dict[str, np.ndarray]:
    """``{hand: (T, 21, 3)}`` camera-frame keypoints (NaN where ``valid`` is False), embedded model, zero betas."""
    from ..mano.model import ManoModel

    out = {}
    for side, p in mano.items():
        m = ManoModel.embedded(side)
        go = torch.nan_to_num(p["global_orient"].double())
        T = go.shape[0]
        with torch.no_grad():
            k = m.keypoints(torch.zeros(1, 10, dtype=torch.float64), go, torch.nan_to_num(p["hand_pose"].double()),
                            torch.nan_to_num(p["trans"].double())).numpy()
        k = k.reshape(T, 21, 3)
        k[~p["valid"].numpy()] = np.nan
        out[side] = k
    return out


def render_generation(image: np.ndarray, mano: dict[str, dict], out_dir, *, intrinsics=None, fps: float = 15.0,
                      caption: str = "", strip_frames: int = 6, progress: bool = False) -> dict[str, Path]:
    """Write ``strip.png`` (``strip_frames`` evenly spaced frames side by side) and ``motion.mp4`` (every
    frame) of the generated hands drawn over ``image`` (uint8 (H, W, 3)); returns their paths."""
    from tqdm.auto import tqdm

    from ..data.show import draw_frame
    from ..data.video import encode_mp4

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    H, W = image.shape[:2]
    K = tuple(float(v) for v in (intrinsics or default_intrinsics(W, H)))
    kps = hand_keypoints(mano)
    T = max(k.shape[0] for k in kps.values())
    ep = SimpleNamespace(fps=fps, camera=SimpleNamespace(intrinsics=[K] * T, distortion=None, distortion_model=None))
    frames = []
    for t in tqdm(range(T), desc="render", unit="frame", disable=not progress, dynamic_ncols=True):
        frames.append(draw_frame(image, {s: k for s, k in kps.items() if t < k.shape[0]}, ep, t, caption, band=None))
    h = max(f.shape[0] for f in frames)
    frames = [np.pad(f, ((0, h - f.shape[0]), (0, 0), (0, 0)), constant_values=255) for f in frames]
    pick = np.unique(np.linspace(0, T - 1, min(strip_frames, T)).round().astype(int))
    from PIL import Image

    strip = out / "strip.png"
    Image.fromarray(np.concatenate([frames[i] for i in pick], 1)).save(strip)
    video = out / "motion.mp4"
    video.write_bytes(encode_mp4(np.stack(frames), fps))
    return {"strip": strip, "video": video}
