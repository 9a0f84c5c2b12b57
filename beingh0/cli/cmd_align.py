"""``beingh0 align``: weak-perspective alignment of one image or video frame (beingh0.align.viz).

``beingh0 data balance`` (balancing across sources) is a verb of the data group (``cmd_data.py``).
"""
from __future__ import annotations

from .common import user_path

HELP = "map an image to Being-H0's target camera (weak-perspective alignment) and show before/after"


def _align(a):
    from ..align.viz import align_image_file

    paths = align_image_file(a.image, a.intrinsics, dist=a.dist, dist_model=a.dist_model, keypoints=a.keypoints,
                             out_dir=a.out, size=a.size, resize=a.resize, target=a.target, frame=a.frame,
                             backend=a.backend)
    for k, p in paths.items():
        print(f"{k}: {p}")


def register(sub) -> None:
    s = sub.add_parser(
        "align", help=HELP,
        description="Warp IMAGE (a picture, or one frame of a video) from its camera to the target camera "
                    "(default: Being-H0's fx=fy=736.6339, cx=960, cy=540 on 1920x1080, then 448x448), in one "
                    "resampling pass. Writes the aligned image, a before/after PNG with keypoints, and a JSON with "
                    "the affine and the model-input intrinsics.")
    s.add_argument("image", type=user_path, help="image file (PNG/JPEG/...) or video (.mp4 etc., see --frame)")
    s.add_argument("--intrinsics", required=True, metavar="FX,FY,CX,CY",
                   help="source camera in pixels of IMAGE as it is (OpenCV convention, pixel centres at integers)")
    s.add_argument("--dist", default=None, metavar="K1,K2,P1,P2[,K3]",
                   help="lens distortion coefficients, OpenCV order (fisheye: k1,k2,k3,k4 with --dist-model fisheye)")
    s.add_argument("--dist-model", choices=["radtan", "fisheye"], default="radtan", help="distortion model (default: radtan)")
    s.add_argument("--keypoints", type=user_path, default=None, metavar="FILE",
                   help=".npy of (21, 2) source pixels or (21, 3) camera-frame metres, drawn before and after")
    s.add_argument("--out", type=user_path, default="out/align", help="output folder (default: out/align)")
    s.add_argument("--size", type=int, default=448, help="model input side in pixels (default: 448)")
    s.add_argument("--resize", choices=["stretch", "letterbox", "crop"], default="stretch",
                   help="target frame -> model input when aspect ratios differ (default: stretch, as the official release)")
    s.add_argument("--target", default=None, metavar="FX,FY,CX,CY,W,H", help="another target camera (default: Being-H0's)")
    s.add_argument("--frame", type=int, default=0, help="frame index when IMAGE is a video (default: 0)")
    s.add_argument("--backend", default=None, help="warp kernel backend: auto, reference, cpp, cuda, triton")
    s.set_defaults(fn=_align)
