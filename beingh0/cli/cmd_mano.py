"""``beingh0 mano {demo,convert,export-embedded,fit}``: the hand-model layer (beingh0.mano)."""
from __future__ import annotations

from .common import user_path

HELP = "hand model tools: demo, convert, export-embedded, fit"
BACKENDS = "kernel backend: auto, reference, cpp, cuda, triton (default: $BEINGH0_BACKEND or auto)"


def _mano_demo(a):
    from ..data.synth.mano_demo import run_demo

    run_demo(out_dir=a.out, frames=a.frames, noise_mm=a.noise_mm, seed=a.seed, backend=a.backend)


def _mano_convert(a):
    from ..mano.convert import convert_model

    print(convert_model(a.src, a.dst, side=a.side))


def _mano_export_embedded(a):
    from ..mano.convert import export_embedded

    for p in export_embedded(a.out_dir, fmt=a.format):
        print(p)


def _mano_fit(a):
    from ..core.config import config_from_args
    from ..mano.fit import FitConfig, fit_file
    from ..mano.model import ManoModel

    cfg = config_from_args(FitConfig, a)
    model = ManoModel.from_file(a.model, side=a.side) if a.model else ManoModel.embedded(a.side or "right")
    fit_file(a.keypoints, a.out, model=model, config=cfg, render_path=a.render, frames=a.frames, side=model.side)


def register(sub) -> None:
    from ..core.config import add_config_args
    from ..mano.fit import FitConfig

    mano = sub.add_parser("mano", help=HELP, description="The hand-model layer: the embedded (non-MANO) hand, "
                          "safe loading of official MANO files, and fitting MANO to 3D keypoints."
                          ).add_subparsers(dest="mano_verb", required=True, metavar="TOOL")

    s = mano.add_parser("demo", help="pose the embedded hand along a grasp, add keypoint noise, fit it back, report mm, render")
    s.add_argument("--out", type=user_path, default="out/mano-demo",
                   help="output folder for the render and the fitted parameters (default: out/mano-demo)")
    s.add_argument("--frames", type=int, default=90, help="frames of motion at 15 FPS (default: 90)")
    s.add_argument("--noise-mm", type=float, default=4.0, help="std of the Gaussian keypoint noise in mm (default: 4)")
    s.add_argument("--seed", type=int, default=0, help="(default: 0)")
    s.add_argument("--backend", default=None, help=BACKENDS)
    s.set_defaults(fn=_mano_demo)

    s = mano.add_parser("convert", help="convert MANO_*.pkl (read safely, no chumpy) to .npz or .safetensors")
    s.add_argument("src", type=user_path, help="MANO_RIGHT.pkl / MANO_LEFT.pkl (or .npz/.safetensors)")
    s.add_argument("dst", type=user_path, help="output .npz or .safetensors")
    s.add_argument("--side", choices=["right", "left"], default=None, help="default: from the file name")
    s.set_defaults(fn=_mano_convert)

    s = mano.add_parser("export-embedded", help="write the embedded (non-MANO) hand model as MANO-layout pickles or native files")
    s.add_argument("out_dir", type=user_path, help="output folder (MANO_RIGHT.* and MANO_LEFT.*)")
    s.add_argument("--format", choices=["pkl", "npz", "safetensors"], default="pkl", help="(default: pkl, loadable by smplx)")
    s.set_defaults(fn=_mano_export_embedded)

    s = mano.add_parser("fit", help="fit MANO parameters to a (T, 21, 3) keypoint sequence in metres (.npy)",
                        description="Fit MANO parameters (global_orient, hand_pose, trans, shared betas) to a 3D "
                                    "keypoint sequence: clean it (NaN gaps, mirrored frames), fit in two stages "
                                    "with smoothness and joint limits, print the per-joint error in mm.")
    s.add_argument("keypoints", type=user_path, help=".npy file of shape (T, 21, 3), Being-H0/MediaPipe keypoint order, metres")
    s.add_argument("--out", type=user_path, required=True, help="output .npz with betas, global_orient, hand_pose, trans, errors")
    s.add_argument("--render", type=user_path, default=None, help="PNG showing fitted hands next to the input keypoints")
    s.add_argument("--model", type=user_path, default=None, help="MANO .pkl/.npz/.safetensors (default: the embedded hand)")
    s.add_argument("--side", choices=["right", "left"], default=None, help="hand side (default: from --model, else right)")
    s.add_argument("--frames", type=int, default=None, help="fit only the first N frames (default: all)")
    add_config_args(s, FitConfig, title="fit options (beingh0.mano.fit.FitConfig)")
    s.set_defaults(fn=_mano_fit)
