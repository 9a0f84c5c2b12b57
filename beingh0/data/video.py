"""Video and image I/O for episodes (PyAV for mp4/AV1, Pillow for JPEG).

``encode_mp4`` writes H.264 (yuv420p, odd sizes padded by one edge pixel and recorded so decode
crops back); ``decode_video`` reads selected frames from mp4 bytes or a file (any codec FFmpeg
decodes, e.g. the AV1 of LeRobot datasets); ``decode_jpeg`` / ``encode_jpeg`` for JPEG frames;
``episode_frames`` returns an episode's frames as uint8 (n, H, W, 3) whatever their storage.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import numpy as np

from ..core.errors import UserFileError, UserValueError


def _av():
    from .extras import require

    return require("av", "data", "video I/O (mp4, AV1)")


def encode_mp4(frames: np.ndarray, fps: float, crf: int = 23) -> bytes:
    """H.264 mp4 of uint8 frames (T, H, W, 3); frame ``t`` decodes as index ``t``."""
    av = _av()
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or frames.shape[0] == 0:
        raise UserValueError(f"encode_mp4: expected uint8 frames (T>0, H, W, 3), got {frames.dtype} {frames.shape}")
    T, H, W, _ = frames.shape
    pad_h, pad_w = H % 2, W % 2
    if pad_h or pad_w:
        frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as c:
        from fractions import Fraction

        s = c.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        s.width, s.height, s.pix_fmt = W + pad_w, H + pad_h, "yuv420p"
        s.options = {"crf": str(crf), "preset": "veryfast", "tune": "fastdecode"}
        s.metadata["comment"] = f"beingh0 size={W}x{H}"
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return buf.getvalue()


def decode_video(src: bytes | str | Path, indices: Sequence[int] | None = None, size: tuple[int, int] | None = None,
                 resize: tuple[int, int] | None = None) -> np.ndarray:
    """Frames ``indices`` (all when None) of a video as uint8 (n, H, W, 3) RGB.

    ``size`` = (width, height) crops frames that ``encode_mp4`` padded to even sizes. ``resize`` =
    (width, height) resamples each decoded frame (after the crop) with FFmpeg's swscale bilinear
    filter, which low-passes when shrinking (about 2 ms per 640x480 frame on one CPU core), so a
    resized decode never holds full-size frames. Errors name the source; an index past the end is
    an error, not a short result.
    """
    av = _av()
    name = f"{len(src)}-byte video" if isinstance(src, (bytes, bytearray)) else str(src)
    if not isinstance(src, (bytes, bytearray)) and not Path(src).is_file():
        raise UserFileError(f"{src}: no such video file")
    want = None if indices is None else np.asarray(indices, np.int64)
    if want is not None and want.size and want.min() < 0:
        raise UserValueError(f"{name}: negative frame index")
    out: list[np.ndarray] = []  # all frames (indices=None)
    rows: dict[int, list[int]] = {}  # video frame -> output rows (indices given: frames go straight into arr)
    if want is not None:
        for j, v in enumerate(want.tolist()):
            rows.setdefault(v, []).append(j)
    arr = None
    last = -1 if want is None or not want.size else int(want.max())
    n_seen = 0
    if resize is not None:
        rw, rh = int(resize[0]), int(resize[1])
        if rw < 1 or rh < 1:
            raise UserValueError(f"{name}: resize must be a positive (width, height), got {resize!r}")

    def _rgb(fr):
        if resize is None:
            a = fr.to_ndarray(format="rgb24")
            return a if size is None else a[: size[1], : size[0]]
        if size is None or (fr.width, fr.height) == (size[0], size[1]):
            return fr.to_ndarray(format="rgb24", width=rw, height=rh, interpolation="BILINEAR")
        a = fr.to_ndarray(format="rgb24")[: size[1], : size[0]]  # crop the encoder's padding first
        return av.VideoFrame.from_ndarray(np.ascontiguousarray(a), format="rgb24").to_ndarray(
            format="rgb24", width=rw, height=rh, interpolation="BILINEAR")
    try:
        with av.open(io.BytesIO(src) if isinstance(src, (bytes, bytearray)) else str(src)) as c:
            if not c.streams.video:
                raise UserValueError(f"{name}: no video stream")
            stream = c.streams.video[0]
            stream.thread_type = "AUTO"
            if want is None or want.size:
                for i, fr in enumerate(c.decode(stream)):
                    n_seen = i + 1
                    if want is None:
                        out.append(_rgb(fr))
                        continue
                    js = rows.get(i)
                    if js:
                        a = _rgb(fr)
                        if arr is None:
                            arr = np.empty((len(want),) + a.shape, np.uint8)
                        for j in js:
                            arr[j] = a
                    if i >= last:
                        break
    except av.error.FFmpegError as e:
        raise UserValueError(f"{name}: cannot decode ({e}); the file may be truncated or not a video") from None
    if want is not None and want.size and last >= n_seen:
        missing = min(v for v in rows if v >= n_seen)
        raise UserValueError(f"{name}: frame {missing} requested but the video has only {n_seen} frames")
    if want is None:
        arr = np.stack(out) if out else None
    if arr is None:
        return np.zeros((0, 0, 0, 3), np.uint8)
    return np.ascontiguousarray(arr)


def encode_jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(image, np.uint8)).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def decode_jpeg(data: bytes) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    except (UnidentifiedImageError, OSError) as e:
        raise UserValueError(f"not a decodable JPEG image ({e})") from None


def episode_frames(ep, indices: Sequence[int] | None = None, root: str | Path | None = None) -> np.ndarray:
    """Frames of an :class:`~beingh0.data.episode.Episode` (episode frame numbers) as uint8 (n, H, W, 3)."""
    fr = ep.frames
    t = np.arange(ep.num_frames) if indices is None else np.asarray(indices, np.int64)
    if t.size and (t.min() < 0 or t.max() >= ep.num_frames):
        raise IndexError(f"episode {ep.episode_id}: frame indices must lie in [0, {ep.num_frames})")
    size = (ep.camera.width, ep.camera.height)
    if fr.kind == "none":
        raise UserValueError(f"episode {ep.episode_id} ({ep.source}) is motion-only: it has no frames")
    if fr.kind == "jpeg":
        return np.stack([decode_jpeg(fr.data[i]) for i in t.tolist()]) if t.size else np.zeros((0, size[1], size[0], 3), np.uint8)
    vid_idx = fr.indices[t]
    if fr.kind == "mp4":
        return decode_video(fr.data, vid_idx, size=size)
    path = Path(fr.path)
    if not path.is_absolute():
        if root is None:
            raise UserValueError(f"episode {ep.episode_id}: frames live in the external video {fr.path!r}; pass root= (the source data folder)")
        path = Path(root) / path
    return decode_video(path, vid_idx, size=size)
