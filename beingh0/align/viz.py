"""Align one image (or a video frame) and show it: what ``beingh0 align`` runs.

Writes ``<stem>_aligned.png`` (the model input, 0..255, no normalisation), ``<stem>_before_after.png``
(source and aligned image side by side, keypoints drawn where they project in each) and
``<stem>_align.json`` (the affine, the model camera, the source camera).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from .camera import OFFICIAL_TARGET, Intrinsics, TargetCamera, project_points
from .geometry import Alignment, align_matrix

__all__ = ["load_frame", "load_keypoints", "align_image", "align_image_file", "VIDEO_SUFFIXES"]

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v")


def load_frame(path, frame: int = 0) -> np.ndarray:
    """An RGB uint8 (H, W, 3) image from a picture file, or frame ``frame`` of a video (PyAV)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"image {path} does not exist")
    if path.suffix.lower() in VIDEO_SUFFIXES:
        try:
            import av
        except ImportError:
            raise RuntimeError("reading video frames needs PyAV: pip install av") from None
        if frame < 0:
            raise ValueError(f"--frame must be >= 0, got {frame}")
        with av.open(str(path)) as c:
            for i, f in enumerate(c.decode(video=0)):
                if i == frame:
                    return f.to_ndarray(format="rgb24")
        raise ValueError(f"{path} has only {i + 1} frames; pick --frame below that")
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return np.array(im.convert("RGB"))
    except UnidentifiedImageError:
        raise ValueError(f"{path} is not an image Pillow can read (or a video with suffix {VIDEO_SUFFIXES})") from None


def load_keypoints(path) -> np.ndarray:
    """(N, 2) pixels or (N, 3) camera-frame metres from a .npy file (a leading frame axis of 1 is dropped)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"keypoints file {path} does not exist")
    if path.suffix.lower() != ".npy":
        raise ValueError(f"keypoints must be a .npy file, got {path.name}")
    kp = np.load(path, allow_pickle=False)
    if kp.ndim == 3 and kp.shape[0] == 1:
        kp = kp[0]
    if kp.ndim != 2 or kp.shape[1] not in (2, 3) or not np.issubdtype(kp.dtype, np.number):
        raise ValueError(f"keypoints must be (21, 2) pixels or (21, 3) camera-frame metres, got {kp.shape} {kp.dtype}")
    return kp.astype(np.float64)


def align_image(image: np.ndarray, src: Intrinsics, target: TargetCamera = OFFICIAL_TARGET, *,
                backend=None) -> tuple[np.ndarray, np.ndarray, Alignment]:
    """(H, W, 3) uint8 -> (aligned uint8 (h, w, 3), valid mask (h, w), the Alignment)."""
    from ..ops.warp import warp_align

    if image.shape[:2] != (src.height, src.width):
        raise ValueError(f"intrinsics are for {src.width}x{src.height} but the image is {image.shape[1]}x{image.shape[0]}")
    al = align_matrix(src, target)
    out = warp_align(torch.from_numpy(np.ascontiguousarray(image))[None], torch.as_tensor(al.dst_from_src),
                     target.size, mean=None, std=None, K_src=torch.as_tensor(src.K) if src.distorted else None,
                     dist=torch.tensor(src.dist) if src.distorted else None, dist_model=src.dist_model, backend=backend)
    img = out.image[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()
    return img, out.mask[0].numpy(), al


def _draw_points(ax, uv: np.ndarray) -> None:
    from ..core.constants import KEYPOINT_PARENTS
    from ..mano.render import FINGER_COLOURS, finger_of

    if len(uv) == 21:
        for k, p in enumerate(KEYPOINT_PARENTS):
            if p >= 0:
                ax.plot(uv[[p, k], 0], uv[[p, k], 1], "-", color=FINGER_COLOURS[finger_of(k)], lw=1.5)
    ax.scatter(uv[:, 0], uv[:, 1], s=10, c="yellow", edgecolors="black", linewidths=0.5, zorder=5)


def align_image_file(image_path, intrinsics: str, *, dist: str | None = None, dist_model: str = "radtan",
                     keypoints=None, out_dir="out/align", size: int = 448, resize: str = "stretch",
                     target: str | None = None, frame: int = 0, backend=None) -> dict:
    """Align one image file to the target camera and write the PNGs and JSON; returns the written paths."""
    from ..mano.render import pyplot_agg

    img = load_frame(image_path, frame)
    H, W = img.shape[:2]
    src = Intrinsics.from_string(intrinsics, W, H, dist, dist_model)
    if target:
        from .camera import parse_floats

        v = parse_floats(target, "target (fx,fy,cx,cy,width,height)", (6,))
        frame_cam = Intrinsics(*v[:4], v[4], v[5])
    else:
        frame_cam = OFFICIAL_TARGET.frame
    tgt = TargetCamera(frame_cam, (size, size), resize)
    out_img, mask, al = align_image(img, src, tgt, backend=backend)
    kp_before = kp_after = None
    if keypoints is not None:
        kp = load_keypoints(keypoints)
        if kp.shape[1] == 2:
            kp_before, kp_after = kp, al.src_to_model(kp)
        else:
            if np.any(kp[:, 2] <= 0):
                raise ValueError("3D keypoints must lie in front of the camera (z > 0, OpenCV frame, metres)")
            kp_before, kp_after = project_points(kp, src), project_points(kp, al.K_model)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = Path(image_path).stem + (f"_f{frame}" if Path(image_path).suffix.lower() in VIDEO_SUFFIXES else "")
    from PIL import Image

    paths = {"aligned": out / f"{stem}_aligned.png", "before_after": out / f"{stem}_before_after.png",
             "json": out / f"{stem}_align.json"}
    Image.fromarray(out_img).save(paths["aligned"])
    plt = pyplot_agg()
    fig, axes = plt.subplots(1, 2, figsize=(12, 5), gridspec_kw={"width_ratios": [W / H, size / size]})
    axes[0].imshow(img)
    axes[0].set_title(f"source {W}x{H}: fx={src.fx:.1f} fy={src.fy:.1f} (hfov {src.fov_deg()[0]:.1f} deg)"
                      + (f", {src.dist_model} distortion" if src.distorted else ""), fontsize=9)
    axes[1].imshow(out_img)
    axes[1].contour(mask, levels=[0.5], colors="cyan", linewidths=0.8)
    k = al.K_model
    axes[1].set_title(f"aligned {size}x{size} ({resize}): fx={k.fx:.1f} fy={k.fy:.1f}\ntarget frame "
                      f"{frame_cam.width}x{frame_cam.height}, hfov {frame_cam.fov_deg()[0]:.1f} deg; cyan: source border",
                      fontsize=9)
    for ax, uv, (h, w) in ((axes[0], kp_before, (H, W)), (axes[1], kp_after, (size, size))):
        if uv is not None:
            _draw_points(ax, uv)
        ax.set_xlim(-0.5, w - 0.5)
        ax.set_ylim(h - 0.5, -0.5)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(paths["before_after"], dpi=100)
    plt.close(fig)
    info = {"image": str(image_path), "frame": frame, "source": {"fx": src.fx, "fy": src.fy, "cx": src.cx, "cy": src.cy,
            "width": W, "height": H, "dist": src.dist, "dist_model": src.dist_model},
            "model_intrinsics": {"fx": k.fx, "fy": k.fy, "cx": k.cx, "cy": k.cy, "width": k.width, "height": k.height},
            "dst_from_src": al.dst_from_src.tolist(), "valid_fraction": float(mask.mean())}
    if kp_after is not None:
        info["keypoints_model_px"] = kp_after.tolist()
    paths["json"].write_text(json.dumps(info, indent=1))
    return {k: str(v) for k, v in paths.items()}
