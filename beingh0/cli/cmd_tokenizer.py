"""``beingh0 tokenizer {train,eval,quickstart}``: parse and call ``beingh0.tokenizer.quickstart``."""
from __future__ import annotations


def _train(a):
    from ..tokenizer.quickstart import train_command

    train_command(a.out, config=a.config, steps=a.steps, resume=a.resume, batch_size=a.batch_size, lr=a.lr,
                  minutes=a.minutes, clips=a.episodes, seed=a.seed, progress=not a.quiet)


def _eval(a):
    from ..tokenizer.quickstart import eval_command

    eval_command(a.checkpoint, real=a.real, clips=a.episodes, seed=a.seed, data_dir=a.data_dir)


def _quickstart(a):
    from ..tokenizer.quickstart import quickstart

    quickstart(a.out, minutes_budget=a.minutes, seed=a.seed, data_dir=a.data_dir)


def register(sub, bench) -> None:
    from ..tokenizer.config import PRESETS

    tok = sub.add_parser("tokenizer", help="GRQ-VAE motion tokenizer: train, evaluate (MANO motion <-> 128 ids per hand-second)")
    t = tok.add_subparsers(dest="tokenizer_verb", required=True, metavar="TOOL")

    s = t.add_parser("train", help="train a tokenizer on synthetic hand motion (checkpoints, plots, exact --resume)",
                     description="Train the GRQ-VAE motion tokenizer. Writes DIR/tokenizer (the model), DIR/checkpoint "
                                 "(exact resume), DIR/losses.png and DIR/codebook_usage.png, then prints the "
                                 "reconstruction table (mm) on held-out clips.")
    s.add_argument("--out", required=True, help="output folder")
    s.add_argument("--config", default="small", choices=list(PRESETS),
                   help="architecture preset: paper (Being-H0 part-level, GPU-sized), whole-4groups / whole-16layers "
                        "(paper ablations), small (CPU), tiny (tests). Default: small")
    s.add_argument("--steps", type=int, default=None, help="total optimizer steps to reach (default: 2000)")
    s.add_argument("--resume", action="store_true", help="continue from DIR/checkpoint (architecture taken from it)")
    s.add_argument("--batch-size", type=int, default=128, help="windows per step (default: 128)")
    s.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate (default: 1e-3)")
    s.add_argument("--minutes", type=float, default=None, help="stop after this many minutes of training (checkpointed)")
    s.add_argument("--episodes", type=int, default=64, help="synthetic UniHand training episodes of 6 s, both hands (default: 64)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(fn=_train)

    s = t.add_parser("eval", help="reconstruction table (MPJPE, PA-MPJPE, wrist; mm) and codebook usage of a tokenizer",
                     description="Encode -> decode held-out synthetic clips (and, with --real, the real MediaPipe "
                                 "sequence fitted to MANO) and report errors in mm after forward kinematics.")
    s.add_argument("checkpoint", help="tokenizer folder (DIR/tokenizer or DIR/checkpoint) or a training output DIR")
    s.add_argument("--real", action="store_true", help="also the real sequence from ../shared/data (skipped when absent)")
    s.add_argument("--data-dir", default=None, help="folder holding dex_retargeting_human_hand/ (default: ../shared/data)")
    s.add_argument("--episodes", type=int, default=8, help="held-out synthetic UniHand episodes (default: 8)")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(fn=_eval)

    s = t.add_parser("quickstart", help="train the small tokenizer for a few minutes on CPU and print the mm table")
    s.add_argument("--out", default="out/tokenizer-quickstart", help="output folder (default: out/tokenizer-quickstart)")
    s.add_argument("--minutes", type=float, default=3.0, help="total time budget in minutes (default: 3)")
    s.add_argument("--data-dir", default=None, help="folder holding dex_retargeting_human_hand/ (default: ../shared/data)")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(fn=_quickstart)
