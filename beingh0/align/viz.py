"""Align one image (or a video frame) and show it: what ``beingh0 align`` runs.

Writes ``<stem>_aligned.png`` (the model input, 0..255, no normalisation), ``<stem>_before_after.png``
(source and aligned image side by side, keypoints drawn where they project in each) and
``<stem>_align.json`` (the affine, the model camera, the source camera).
"""
from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import torch

from ..core.errors import UserError, UserFileError, UserValueError
from .camera import OFFICIAL_TARGET, Intrinsics, TargetCamera, project_points
from .geometry import Alignment, align_matrix

__all__ = ["load_frame", "load_keypoints", "align_image", "align_image_file", "check_image_size", "VIDEO_SUFFIXES",
           "MAX_IMAGE_SIDE", "MAX_IMAGE_PIXELS"]

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v")
#: Largest image side in pixels that is decoded or produced (no camera frame is larger; 8K is 7680).
MAX_IMAGE_SIDE = 16384
#: Largest image in pixels that is decoded or produced (100 MPix; 8K UHD is 33 MPix).
MAX_IMAGE_PIXELS = 100_000_000
#: Most keypoints drawn from a --keypoints file (a hand has 21; both hands with extras fit easily).
MAX_KEYPOINTS = 10_000


class _MissingExtra(UserError, RuntimeError):
    """An optional dependency is not installed (the message names the extra)."""


def check_image_size(width: int, height: int, what: str = "image") -> None:
    """Refuse an image size no camera frame has (from a header, before decoding): more than
    :data:`MAX_IMAGE_SIDE` pixels a side or :data:`MAX_IMAGE_PIXELS` in all, or an empty image."""
    width, height = int(width), int(height)
    if width <= 0 or height <= 0:
        raise UserValueError(f"{what} is {width}x{height} pixels: empty; pass a real image or video")
    if width > MAX_IMAGE_SIDE or height > MAX_IMAGE_SIDE or width * height > MAX_IMAGE_PIXELS:
        raise UserValueError(f"{what} is {width}x{height} pixels; no camera frame is that large (limit "
                             f"{MAX_IMAGE_SIDE} px a side and {MAX_IMAGE_PIXELS // 1_000_000} MPix); downscale it and "
                             "scale the intrinsics (fx, fy, cx, cy) by the same factor")


def _check_input_path(path: Path, what: str) -> None:
    if path.is_dir():
        raise UserFileError(f"{what} {path} is a folder; pass one file (align one image or video frame per call)")
    if not path.exists():
        raise UserFileError(f"{what} {path} does not exist")


def load_frame(path, frame: int = 0) -> np.ndarray:
    """An RGB uint8 (H, W, 3) image from a picture file, or frame ``frame`` of a video (PyAV).

    The size is read from the file's header and checked (``check_image_size``) before anything is
    decoded; every problem with the file is a one-line ``UserError``.
    """
    path = Path(path)
    _check_input_path(path, "image")
    if not isinstance(frame, (int, np.integer)) or frame < 0:
        raise UserValueError(f"--frame must be an integer >= 0, got {frame!r}")
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return _load_video_frame(path, int(frame))
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():   # Pillow warns above 89 MPix; check_image_size is the limit here
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
        with im:
            check_image_size(*im.size, what=str(path))
            return np.array(im.convert("RGB"))
    except UserError:
        raise
    except Image.DecompressionBombError:   # Pillow's own cap (2 x 89 MPix), found from the header too
        raise UserValueError(f"{path} is larger than {MAX_IMAGE_PIXELS // 1_000_000} MPix; no camera frame is that "
                             "large; downscale it and scale the intrinsics by the same factor") from None
    except UnidentifiedImageError:
        raise UserValueError(f"{path} is not an image Pillow can read (or a video with suffix {VIDEO_SUFFIXES}); "
                             "pass a PNG/JPEG/... image or a video") from None
    except (OSError, ValueError, EOFError, SyntaxError) as e:   # truncated or corrupt data
        raise UserValueError(f"{path}: the image data is unreadable ({type(e).__name__}: {e}); is the file "
                             "complete?") from None


def _load_video_frame(path: Path, frame: int) -> np.ndarray:
    try:
        import av
    except ImportError:
        raise _MissingExtra("reading video frames needs PyAV, in the 'data' extra: pip install 'beingh0[data]' "
                            "(or pip install av)") from None
    try:
        with av.open(str(path)) as c:
            if not c.streams.video:
                raise UserValueError(f"{path} has no video stream; pass an image or a video")
            st = c.streams.video[0]
            check_image_size(st.codec_context.width, st.codec_context.height, what=f"{path} (video)")
            n = 0
            for f in c.decode(st):
                if n == frame:
                    return f.to_ndarray(format="rgb24")
                n += 1
    except UserError:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as e:
        raise UserValueError(f"{path}: not a readable video ({type(e).__name__}: {e})") from None
    raise UserValueError(f"{path} has only {n} frames; pick --frame below that")


def load_keypoints(path) -> np.ndarray:
    """(N, 2) pixels or (N, 3) camera-frame metres from a .npy file (a leading frame axis of 1 is dropped).

    Never unpickled; the header is checked before the array is read."""
    from ..mano.io import read_npy_header

    path = Path(path)
    _check_input_path(path, "keypoints file")
    hint = "pass a .npy of (21, 2) pixels or (21, 3) camera-frame metres"
    if path.suffix.lower() != ".npy":
        raise UserValueError(f"keypoints must be a .npy file, got {path.name}; {hint}")
    try:
        shape, dtype, present = read_npy_header(path)
    except (ValueError, EOFError, OSError) as e:
        raise UserValueError(f"keypoints file {path} is not a readable .npy ({type(e).__name__}: {e}); {hint}") from None
    if len(shape) == 3 and shape[0] == 1:
        shape = shape[1:]
    if len(shape) != 2 or shape[1] not in (2, 3) or dtype.hasobject or dtype.kind not in "iuf":
        raise UserValueError(f"keypoints must be (21, 2) pixels or (21, 3) camera-frame metres, got {shape} {dtype} "
                             f"in {path}")
    if shape[0] > MAX_KEYPOINTS or present < math.prod(shape) * dtype.itemsize:
        raise UserValueError(f"keypoints file {path} declares {shape[0]} points with {present} bytes of data (at most "
                             f"{MAX_KEYPOINTS} points, and the data must be complete); {hint}")
    try:
        kp = np.load(path, allow_pickle=False)
    except (ValueError, EOFError, OSError) as e:
        raise UserValueError(f"keypoints file {path} is not a readable .npy ({type(e).__name__}: {e}); {hint}") from None
    return kp.reshape(shape).astype(np.float64)


def align_image(image: np.ndarray, src: Intrinsics, target: TargetCamera = OFFICIAL_TARGET, *,
                backend=None) -> tuple[np.ndarray, np.ndarray, Alignment]:
    """(H, W, 3) uint8 -> (aligned uint8 (h, w, 3), valid mask (h, w), the Alignment)."""
    from ..ops.warp import warp_align

    if image.shape[:2] != (src.height, src.width):
        raise UserValueError(f"intrinsics are for {src.width}x{src.height} but the image is {image.shape[1]}x{image.shape[0]}")
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

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UserValueError(f"--out {out} is a file; pass a folder for the aligned image, the plot and the JSON "
                             "(it is created if missing)")
    if not isinstance(size, (int, np.integer)) or size < 1:
        raise UserValueError(f"--size must be a positive number of pixels, got {size!r}")
    check_image_size(size, size, what=f"the model input (--size {size})")
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
                raise UserValueError("3D keypoints must lie in front of the camera (z > 0, OpenCV frame, metres)")
            kp_before, kp_after = project_points(kp, src), project_points(kp, al.K_model)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise UserValueError(f"--out {out}: a part of that path is a file; pass a folder path") from None
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
