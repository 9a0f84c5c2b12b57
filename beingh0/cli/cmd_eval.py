"""``beingh0 eval``: the paper's evaluation of a pretrained VLA (beingh0.vla.evaluate), and
``beingh0 eval train-retrieval``: the text-motion embedding model its R@3 and FID need
(beingh0.vla.retrieval). Options that are config fields are generated from ``EvalConfig``,
``RetrievalConfig`` and ``RetrievalTrain``, so their defaults live in the library only.
"""
from __future__ import annotations

from .common import user_path

HELP = "evaluate a pretrained VLA (MPJPE, MWTE, PA-MPJPE, valid rate, R@3, FID; head/tail), train its retrieval model"


def _eval(a):
    from pathlib import Path

    from ..core.config import config_from_args
    from ..core.errors import UserValueError
    from ..vla.evaluate import EvalConfig, evaluate, format_tables, load_checkpoint, write_record
    from ..vla.retrieval import load_retrieval

    if a.checkpoint is None or not a.data:
        raise UserValueError("beingh0 eval needs --checkpoint RUN_OR_MODEL_DIR and --data DIR... (or the verb "
                             "train-retrieval); see beingh0 eval --help")
    overrides = {"modes": tuple(a.mode)} if a.mode else {}
    if a.samples is not None:
        overrides["samples"] = a.samples
    cfg = config_from_args(EvalConfig, a, **overrides)
    vla, tok, run = load_checkpoint(a.checkpoint, a.tokenizer)
    retrieval = None
    if a.retrieval is not None:
        retrieval = load_retrieval(a.retrieval)
    elif run is not None and (Path(run) / "retrieval" / "model").is_dir():
        retrieval = load_retrieval(Path(run) / "retrieval")
    train = a.train_data
    if train is None and run is not None and (Path(run) / "data" / "train" / "index.json").is_file():
        train = [Path(run) / "data" / "train"]
    record = evaluate(vla, tok, a.data, cfg, retrieval=retrieval, train_folders=train, progress=a.progress)
    record["checkpoint"] = str(a.checkpoint)
    record["retrieval_model"] = str(a.retrieval) if a.retrieval else (str(Path(run) / "retrieval") if retrieval else None)
    out = a.out or Path(run or a.checkpoint) / "eval"
    js, png = write_record(record, out)
    print(format_tables(record))
    print(f"{record['seconds']:.0f} s; record: {js}; plot: {png}")


def _train_retrieval(a):
    from ..core.config import config_from_args
    from ..core.errors import UserValueError
    from ..vla.retrieval import RetrievalConfig, RetrievalTrain, train_retrieval

    if not a.data or a.out is None:
        raise UserValueError("beingh0 eval train-retrieval needs --data DIR... and --out DIR")
    cfg = config_from_args(RetrievalConfig, a)
    tr = config_from_args(RetrievalTrain, a, **({"max_seconds": 60.0 * a.minutes} if a.minutes else {}))
    train_retrieval(a.data, a.out, a.val_data, cfg, tr)


def register(sub) -> None:
    from ..core.config import add_config_args
    from ..vla.evaluate import EvalConfig, MODES
    from ..vla.retrieval import RetrievalConfig, RetrievalTrain

    s = sub.add_parser("eval", help=HELP, description=(
        "Evaluate a pretrained VLA on held-out tokenized dataset folders: visual-grounded generation, contextual "
        "generation and motion translation, with MPJPE, MWTE, PA-MPJPE (mm), valid-generation rate, M2T/T2M R@3 and "
        "FID (with a retrieval model), split into head and tail instructions by their frequency in the training "
        "folders. Each --mode runs on the same samples. Prints the paper's Tables 2-3 and writes eval.json and "
        "eval.png. The verb train-retrieval trains the text-motion retrieval model."))
    s.add_argument("--checkpoint", type=user_path, default=None, metavar="DIR",
                   help="pretraining run folder (OUT of beingh0 pretrain) or its model/ folder")
    s.add_argument("--data", type=user_path, nargs="+", default=None, metavar="DIR", help="held-out tokenized dataset folders")
    s.add_argument("--tokenizer", type=user_path, default=None, metavar="DIR",
                   help="motion tokenizer (default: the run's motion_tokenizer/tokenizer)")
    s.add_argument("--retrieval", type=user_path, default=None, metavar="DIR",
                   help="retrieval model (beingh0 eval train-retrieval --out DIR; default: RUN/retrieval when present)")
    s.add_argument("--train-data", type=user_path, nargs="+", default=None, metavar="DIR",
                   help="training folders that define head/tail (default: RUN/data/train when present)")
    s.add_argument("--mode", nargs="+", choices=MODES, default=None,
                   help="decoding modes, each on the same samples (default: block free soft)")
    s.add_argument("--samples", type=int, default=None, metavar="N", help="held-out samples per task (default 64)")
    s.add_argument("--out", type=user_path, default=None, metavar="DIR", help="where eval.json and eval.png go (default RUN/eval)")
    s.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    add_config_args(s, EvalConfig, exclude=("modes", "samples"), title="evaluation options (beingh0.vla.evaluate.EvalConfig)")
    s.set_defaults(fn=_eval)
    v = s.add_subparsers(dest="eval_verb", required=False, metavar="TOOL")
    t = v.add_parser("train-retrieval", help="train the text-motion retrieval model (TMR-style) that R@3 and FID need",
                     description="Train the text-motion retrieval model on the (instruction or caption, motion) pairs "
                                 "of dataset folders, through the one training loop (progress, checkpoints, exact "
                                 "resume: run the same command again). Writes DIR/model (safetensors + JSON), "
                                 "DIR/report.json and prints its own R@1/R@3/R@10 on training and held-out pairs next "
                                 "to chance.")
    t.add_argument("--data", type=user_path, nargs="+", default=None, metavar="DIR", help="training dataset folders")
    t.add_argument("--val-data", type=user_path, nargs="+", default=None, metavar="DIR",
                   help="held-out folders (default: 20 %% of the training episodes)")
    t.add_argument("--out", type=user_path, default=None, metavar="DIR", help="output folder")
    t.add_argument("--minutes", type=float, default=None, help="wall-clock budget of the training loop")
    add_config_args(t, RetrievalConfig, title="model options (beingh0.vla.retrieval.RetrievalConfig)")
    add_config_args(t, RetrievalTrain, exclude=("max_seconds",), title="training options (beingh0.vla.retrieval.RetrievalTrain)")
    t.set_defaults(fn=_train_retrieval)
