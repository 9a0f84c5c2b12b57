"""``beingh0`` command line: a table from verb to library function. No logic lives here.

Verbs of the hand-model layer are declared below; every other layer adds its verbs from a module
``beingh0/cli/cmd_<name>.py`` that defines ``register(sub, bench)`` (``sub``: the top-level
sub-parsers, ``bench``: the sub-parsers of ``beingh0 bench``; :func:`subgroup` gives a shared group). Modules are found by name, in
sorted order, so a new layer never edits this file.
"""
from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import pickle
import sys

# Before torch loads: torch's OpenMP pool and ours (beingh0._C) would otherwise spin against each
# other on small machines (see beingh0/ops/backend.py: 3.7x slower fits on 2 busy cores).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _info(a):
    from ..info import info_text

    print(info_text())


def _demo(a):
    from ..tokenizer.quickstart import quickstart

    quickstart(a.out, minutes_budget=a.minutes, seed=a.seed, data_dir=a.data_dir, episodes=a.episodes)


def _mano_demo(a):
    from ..mano.demo import run_demo

    run_demo(out_dir=a.out, frames=a.frames, noise_mm=a.noise_mm, seed=a.seed, backend=a.backend)


def _mano_convert(a):
    from ..mano.convert import convert_model

    print(convert_model(a.src, a.dst, side=a.side))


def _mano_export_embedded(a):
    from ..mano.convert import export_embedded

    for p in export_embedded(a.out_dir, fmt=a.format):
        print(p)


def _mano_fit(a):
    from ..mano.fit import FitConfig, fit_file
    from ..mano.model import ManoModel

    model = ManoModel.from_file(a.model, side=a.side) if a.model else ManoModel.embedded(a.side or "right")
    cfg = FitConfig(backend=a.backend, progress=not a.quiet)
    fit_file(a.keypoints, a.out, model=model, config=cfg, render_path=a.render, frames=a.frames, side=model.side)


def _bench_mano(a):
    from ..benchmark.mano import run_mano_bench

    run_mano_bench(device=a.device, batches=a.batch, json_path=a.json, backends=a.backends, repeats=a.repeats)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="beingh0", description="Being-H0: hand models, motion tokens, VLA training and deployment.")
    sub = p.add_subparsers(dest="verb", required=True, metavar="VERB")

    s = sub.add_parser("info", help="versions, devices and which kernel backends this machine has (and why not)")
    s.set_defaults(fn=_info)

    s = sub.add_parser("demo", help="main job: synthesise UniHand motion, train the motion tokenizer for a few minutes, print the mm table",
                       description="Synthesise motion-only UniHand episodes (embedded hand), train the small part-level "
                       "GRQ-VAE tokenizer within the time budget on CPU, and print MPJPE / PA-MPJPE / wrist error in mm "
                       "for held-out synthetic sequences and, when ../shared/data is present, the real MediaPipe sequence.")
    s.add_argument("--out", default="out/demo", help="output folder: tokenizer, checkpoint, loss and codebook plots, report.json (default: out/demo)")
    s.add_argument("--minutes", type=float, default=3.0, help="total time budget in minutes (default: 3)")
    s.add_argument("--episodes", type=int, default=48, help="synthetic training episodes of 6 s, both hands (default: 48)")
    s.add_argument("--data-dir", default=None, help="folder holding dex_retargeting_human_hand/ (default: ../shared/data)")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(fn=_demo)

    mano = sub.add_parser("mano", help="hand model tools: demo, convert, export-embedded, fit").add_subparsers(dest="mano_verb", required=True, metavar="TOOL")
    s = mano.add_parser("demo", help="pose the embedded hand along a grasp, add keypoint noise, fit it back, report mm, render")
    s.add_argument("--out", default="out/mano-demo", help="output folder for the render and the fitted parameters (default: out/mano-demo)")
    s.add_argument("--frames", type=int, default=90, help="frames of motion at 15 FPS (default: 90)")
    s.add_argument("--noise-mm", type=float, default=4.0, help="std of the Gaussian keypoint noise in mm (default: 4)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--backend", default=None, help="kernel backend: auto, reference, cpp, cuda, triton")
    s.set_defaults(fn=_mano_demo)

    s = mano.add_parser("convert", help="convert MANO_*.pkl (read safely, no chumpy) to .npz or .safetensors")
    s.add_argument("src", help="MANO_RIGHT.pkl / MANO_LEFT.pkl (or .npz/.safetensors)")
    s.add_argument("dst", help="output .npz or .safetensors")
    s.add_argument("--side", choices=["right", "left"], default=None, help="default: from the file name")
    s.set_defaults(fn=_mano_convert)
    s = mano.add_parser("export-embedded", help="write the embedded (non-MANO) hand model as MANO-layout pickles or native files")
    s.add_argument("out_dir")
    s.add_argument("--format", choices=["pkl", "npz", "safetensors"], default="pkl")
    s.set_defaults(fn=_mano_export_embedded)
    s = mano.add_parser("fit", help="fit MANO parameters to a (T, 21, 3) keypoint sequence in metres (.npy)")
    s.add_argument("keypoints", help=".npy file of shape (T, 21, 3), Being-H0/MediaPipe keypoint order, metres")
    s.add_argument("--out", required=True, help="output .npz with betas, global_orient, hand_pose, trans, errors")
    s.add_argument("--render", default=None, help="PNG showing fitted hands next to the input keypoints")
    s.add_argument("--model", default=None, help="MANO .pkl/.npz/.safetensors (default: the embedded hand)")
    s.add_argument("--side", choices=["right", "left"], default=None)
    s.add_argument("--frames", type=int, default=None, help="fit only the first N frames (default: all)")
    s.add_argument("--backend", default=None, help="kernel backend: auto, reference, cpp, cuda, triton")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(fn=_mano_fit)

    bench = sub.add_parser("bench", help="kernel benchmarks against their anchors").add_subparsers(dest="bench_verb", required=True, metavar="OP")
    s = bench.add_parser("mano", help="mano_forward / mano_joints vs smplx, side by side")
    s.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    s.add_argument("--batch", type=int, nargs="+", default=[1, 1024, 65536], help="batch sizes (default: 1 1024 65536)")
    s.add_argument("--backends", nargs="+", default=None, help="default: every available backend for the device")
    s.add_argument("--repeats", type=int, default=None, help="timed repeats per case (default: adaptive)")
    s.add_argument("--json", default=None, help="write the records (ENGINEERING.md section 5) to this JSON file")
    s.set_defaults(fn=_bench_mano)

    for mod in sorted(m.name for m in pkgutil.iter_modules(_cli_path()) if m.name.startswith("cmd_")):
        importlib.import_module(f"{__package__}.{mod}").register(sub, bench)
    return p


def subgroup(sub, name: str, help: str):
    """The sub-parsers of ``beingh0 <name>``, created on first use, so that several ``cmd_`` modules
    can add verbs to one group (e.g. ``beingh0 data synth`` and ``beingh0 data build``)."""
    p = sub.choices.get(name)
    if p is None:
        p = sub.add_parser(name, help=help)
        p.set_defaults(_group=p.add_subparsers(dest=f"{name}_verb", required=True, metavar="TOOL"))
    return p.get_default("_group")


def _cli_path() -> list[str]:
    return [os.path.dirname(os.path.abspath(__file__))]


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.fn(args)
    except (ValueError, TypeError, FileNotFoundError, RuntimeError, pickle.UnpicklingError) as e:
        print(f"beingh0: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
