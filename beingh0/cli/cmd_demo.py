"""``beingh0 demo``: the README's main job (one command per job: no second copy under ``tokenizer``)."""
from __future__ import annotations

from .common import data_dir_arg, default_data_dir, user_path

HELP = "main job: synthesise UniHand motion, train the motion tokenizer within a time budget, print the mm table"


def _demo(a):
    from ..train.tokenizer import quickstart

    quickstart(a.out, minutes_budget=a.minutes, seed=a.seed, data_dir=a.data_dir or default_data_dir(),
               episodes=a.episodes)


def _positive(text: str) -> float:
    import argparse
    import math

    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"{text!r}: must be a number > 0")
    return v


def register(sub) -> None:
    s = sub.add_parser(
        "demo", help=HELP,
        description="Synthesise motion-only UniHand episodes (embedded hand), train the small part-level GRQ-VAE "
                    "tokenizer on the CPU within --minutes, and print MPJPE / PA-MPJPE / wrist error in mm for "
                    "held-out synthetic sequences and, when ../shared/data is present, the real MediaPipe sequence.")
    s.add_argument("--out", type=user_path, default="out/demo",
                   help="output folder: tokenizer, checkpoint, loss and codebook plots, report.json (default: out/demo)")
    s.add_argument("--minutes", type=_positive, default=3.0,
                   help="total time budget in minutes, synthesis and evaluation included (default: 3; 0.3 is a smoke test)")
    s.add_argument("--episodes", type=int, default=48, help="synthetic training episodes of 6 s, both hands (default: 48)")
    data_dir_arg(s)
    s.add_argument("--seed", type=int, default=0, help="seed of the synthetic data and the training (default: 0)")
    s.set_defaults(fn=_demo)
