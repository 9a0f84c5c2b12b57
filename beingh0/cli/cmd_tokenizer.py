"""``beingh0 tokenizer {train,eval,quickstart}``: the GRQ-VAE motion tokenizer (beingh0.tokenizer).

Model options are the fields of ``TokenizerConfig`` on top of the ``--config`` preset; training
options are the fields of ``TrainConfig``: both generated, so their defaults live in
``beingh0/tokenizer/config.py`` and ``beingh0/tokenizer/train.py`` only. ``quickstart`` is the
first stage of ``beingh0 demo`` on its own (the small tokenizer within a time budget, the mm table).
"""
from __future__ import annotations

from .common import data_dir_arg, default_data_dir, positive_minutes, user_path

HELP = "GRQ-VAE motion tokenizer: train, evaluate (MANO motion <-> 128 ids per hand-second)"
PRESET = "small"  # the preset a plain `tokenizer train` uses: CPU-sized, the paper's token layout
MODEL_EXCLUDE = ("name", "version")  # set from --config / by the library


def _train(a):
    from ..core.config import config_from_args, given
    from ..core.errors import UserValueError
    from ..tokenizer.config import TokenizerConfig
    from ..train.tokenizer import train_command
    from ..tokenizer.train import TrainConfig

    overrides = given(a, TokenizerConfig)
    preset = a.config or PRESET
    if a.resume and (overrides or a.config is not None):
        flags = ["--config"] * (a.config is not None) + ["--" + n.replace("_", "-") for n in sorted(overrides)]
        raise UserValueError(f"--resume takes the architecture from the last checkpoint (DIR/checkpoints/step-N); drop {', '.join(flags)}")
    # the preset's name, or the preset with the model flags applied (checked here, before any data is built)
    model = config_from_args(TokenizerConfig, a, base=TokenizerConfig.preset(preset)) if overrides else preset
    config_from_args(TrainConfig, a)  # check the training flags now: one line naming the field
    train_command(a.out, data=a.data, config=model, resume=a.resume, episodes=a.episodes, **given(a, TrainConfig))


def _eval(a):
    from ..tokenizer.quickstart import eval_command

    data = {"data": a.data} if a.data else {}
    eval_command(a.checkpoint, real=a.real, episodes=a.episodes, seed=a.seed, data_dir=a.data_dir or default_data_dir(),
                 **data)


def _quickstart(a):
    from ..train.tokenizer import quickstart

    quickstart(a.out, minutes_budget=a.minutes, seed=a.seed, data_dir=a.data_dir or default_data_dir(), episodes=a.episodes)


def register(sub) -> None:
    from ..core.config import add_config_args
    from ..tokenizer.config import PRESETS, TokenizerConfig
    from ..tokenizer.train import TrainConfig

    tok = sub.add_parser("tokenizer", help=HELP, description=HELP,
                         epilog="The quick start (train the small tokenizer for a few minutes, print the mm table) "
                                "is 'beingh0 tokenizer quickstart', the first stage of 'beingh0 demo'.")
    t = tok.add_subparsers(dest="tokenizer_verb", required=True, metavar="TOOL")

    s = t.add_parser("train", help="train a tokenizer on UniHand motion (checkpoints, plots, exact --resume)",
                     description="Train the GRQ-VAE motion tokenizer. Writes DIR/tokenizer (the model), DIR/checkpoints/step-N "
                                 "(exact resume), DIR/losses.png and DIR/codebook_usage.png, then prints the "
                                 "reconstruction table (mm) on held-out clips. The quick start is 'beingh0 tokenizer quickstart'.")
    s.add_argument("--out", type=user_path, required=True, help="output folder DIR")
    s.add_argument("--data", type=user_path, nargs="+", default=None, metavar="DIR",
                   help="dataset folders (beingh0 data synth / data build) to train on (default: synthetic motion, "
                        "see --episodes)")
    s.add_argument("--episodes", type=int, default=64,
                   help="without --data: synthetic UniHand training episodes of 6 s, both hands (default: 64)")
    s.add_argument("--config", default=None, choices=list(PRESETS),
                   help="architecture preset: paper (Being-H0 part-level, GPU-sized), whole-4groups / whole-16layers "
                        f"(paper ablations), small (CPU), tiny (tests); the model options below override it (default: {PRESET})")
    s.add_argument("--resume", action="store_true",
                   help="continue from the last checkpoint, DIR/checkpoints/step-N (architecture and settings from it; --steps may grow)")
    add_config_args(s, TokenizerConfig, exclude=MODEL_EXCLUDE, defaults=PRESETS[PRESET],
                    title=f"model options (beingh0.tokenizer.TokenizerConfig; defaults shown: the {PRESET!r} preset)")
    add_config_args(s, TrainConfig, title="training options (beingh0.tokenizer.train.TrainConfig)")
    s.set_defaults(fn=_train)

    s = t.add_parser("eval", help="reconstruction table (MPJPE, PA-MPJPE, wrist; mm) and codebook usage of a tokenizer",
                     description="Encode -> decode held-out synthetic clips (and, with --real, the real MediaPipe "
                                 "sequence fitted to MANO) and report errors in mm after forward kinematics.")
    s.add_argument("checkpoint", type=user_path, help="tokenizer folder (DIR/tokenizer or DIR/checkpoints/step-N) or a training output DIR")
    s.add_argument("--data", type=user_path, nargs="+", default=None, metavar="DIR",
                   help="dataset folders to evaluate on (default: the training run's held-out synthetic folder, "
                        "else --episodes new synthetic episodes)")
    s.add_argument("--real", action="store_true", help="also the real sequence from --data-dir (skipped when absent)")
    data_dir_arg(s)
    s.add_argument("--episodes", type=int, default=8, help="without --data: held-out synthetic UniHand episodes (default: 8)")
    s.add_argument("--seed", type=int, default=0, help="(default: 0)")
    s.set_defaults(fn=_eval)

    s = t.add_parser("quickstart", help="the quick start: the small tokenizer on synthetic motion within --minutes, mm table",
                     description="Synthesise motion-only UniHand episodes (embedded hand), train the small part-level "
                                 "GRQ-VAE tokenizer within --minutes, and print MPJPE / PA-MPJPE / wrist error in mm for "
                                 "held-out synthetic sequences and, when ../shared/data is present, the real MediaPipe "
                                 "sequence. The first stage of 'beingh0 demo'.")
    s.add_argument("--out", type=user_path, default="out/tokenizer-quickstart",
                   help="output folder: tokenizer, checkpoints, loss and codebook plots, report.json "
                        "(default: out/tokenizer-quickstart)")
    s.add_argument("--minutes", type=positive_minutes, default=3.0,
                   help="time budget in minutes, synthesis and evaluation included (default: 3)")
    s.add_argument("--episodes", type=int, default=48, help="synthetic training episodes of 6 s, both hands (default: 48)")
    data_dir_arg(s)
    s.add_argument("--seed", type=int, default=0, help="seed of the synthetic data and the training (default: 0)")
    s.set_defaults(fn=_quickstart)
