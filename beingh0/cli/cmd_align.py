"""``beingh0 align``: weak-perspective alignment of one image or video frame (beingh0.align.viz)."""
from __future__ import annotations


def _align(a):
    from ..align.viz import align_image_file

    paths = align_image_file(a.image, a.intrinsics, dist=a.dist, dist_model=a.dist_model, keypoints=a.keypoints,
                             out_dir=a.out, size=a.size, resize=a.resize, target=a.target, frame=a.frame,
                             backend=a.backend)
    for k, p in paths.items():
        print(f"{k}: {p}")


def _balance(a):
    from ..align.report import balance_report

    balance_report(a.datasets, a.png, group_by=a.group_by, seed=a.seed)


def register(sub, bench):
    from .main import subgroup

    s = subgroup(sub, "data", "UniHand data tools").add_parser(
        "balance", help="view-invariant balancing of hand positions across sources: table + before/after PNG",
        description="Read the wrist positions of dataset folders, fit the balancing sampler (depth scaling and "
                    "in-plane rotation, beingh0.align), draw one move per sample and plot each group's hand-position "
                    "distribution in the model input before and after.")
    s.add_argument("datasets", nargs="+", help="dataset folders (data synth / data build)")
    s.add_argument("--png", default="out/balance.png", help="output plot (default: out/balance.png)")
    s.add_argument("--group-by", default="source",
                   help="'source' (default) or 'meta.<key>', e.g. meta.camera_kind for the synthetic source's ego/third views")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(fn=_balance)

    s = sub.add_parser(
        "align", help="map an image to Being-H0's target camera (weak-perspective alignment) and show before/after",
        description="Warp IMAGE (a picture, or one frame of a video) from its camera to the target camera "
                    "(default: Being-H0's fx=fy=736.6339, cx=960, cy=540 on 1920x1080, then 448x448), in one "
                    "resampling pass. Writes the aligned image, a before/after PNG with keypoints, and a JSON with "
                    "the affine and the model-input intrinsics.")
    s.add_argument("image", help="image file (PNG/JPEG/...) or video (.mp4 etc., see --frame)")
    s.add_argument("--intrinsics", required=True, metavar="FX,FY,CX,CY",
                   help="source camera in pixels of IMAGE as it is (OpenCV convention, pixel centres at integers)")
    s.add_argument("--dist", default=None, metavar="K1,K2,P1,P2[,K3]",
                   help="lens distortion coefficients, OpenCV order (fisheye: k1,k2,k3,k4 with --dist-model fisheye)")
    s.add_argument("--dist-model", choices=["radtan", "fisheye"], default="radtan", help="distortion model (default: radtan)")
    s.add_argument("--keypoints", default=None, metavar="FILE",
                   help=".npy of (21, 2) source pixels or (21, 3) camera-frame metres, drawn before and after")
    s.add_argument("--out", default="out/align", help="output folder (default: out/align)")
    s.add_argument("--size", type=int, default=448, help="model input side in pixels (default: 448)")
    s.add_argument("--resize", choices=["stretch", "letterbox", "crop"], default="stretch",
                   help="target frame -> model input when aspect ratios differ (default: stretch, as the official release)")
    s.add_argument("--target", default=None, metavar="FX,FY,CX,CY,W,H", help="another target camera (default: Being-H0's)")
    s.add_argument("--frame", type=int, default=0, help="frame index when IMAGE is a video (default: 0)")
    s.add_argument("--backend", default=None, help="warp kernel backend: auto, reference, cpp, cuda, triton")
    s.set_defaults(fn=_align)
