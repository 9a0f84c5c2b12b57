"""``beingh0 pretrain``: pretrain the VLA (beingh0.vla.pretrain) on tokenized dataset folders.

Options are the fields of ``JobConfig`` (``--config`` = the preset), ``DataConfig``, ``LossConfig``
and ``TrainConfig`` (defaults: ``beingh0.vla.pretrain.PRETRAIN_TRAIN``), all generated, so their
defaults live in the library only.
"""
from __future__ import annotations

from .common import user_path

HELP = "pretrain the VLA (InternVL3 + motion tokens) on instruction samples; exact resume, torchrun-ready"


def _pretrain(a):
    from ..core.config import config_from_args
    from ..train import TrainConfig
    from ..vla.data import DataConfig
    from ..vla.loss import LossConfig
    from ..vla.pretrain import PRETRAIN_TRAIN, JobConfig, pretrain_command

    job = config_from_args(JobConfig, a)
    data_cfg = config_from_args(DataConfig, a)
    loss = config_from_args(LossConfig, a)
    train = config_from_args(TrainConfig, a, base=PRETRAIN_TRAIN)
    pretrain_command(a.out, a.data, tokenizer=a.tokenizer, init=a.init, val_data=a.val_data, minutes=a.minutes, job=job,
                     data_config=data_cfg, loss=loss, train=train, progress=train.progress)


def register(sub) -> None:
    from ..core.config import add_config_args
    from ..train import TrainConfig
    from ..vla.data import DataConfig
    from ..vla.loss import LossConfig
    from ..vla.pretrain import PRETRAIN_TRAIN, JobConfig

    s = sub.add_parser("pretrain", help=HELP, description=(
        "Pretrain the VLA on instruction samples (visual-grounded generation, contextual prediction, motion <-> text) "
        "of dataset folders whose motion ids were written by `beingh0 data tokenize`. Without --data: a synthetic "
        "UniHand set with frames, tokenized with --tokenizer (or a quickly trained tiny motion tokenizer). Running the "
        "same command again continues the run exactly; under torchrun it runs data-parallel. Prints the held-out loss "
        "against the unigram baseline and the motion-token accuracy."))
    s.add_argument("--out", type=user_path, required=True, help="output folder DIR (checkpoints, model/, loss.png, report.json)")
    s.add_argument("--data", type=user_path, nargs="+", default=None, metavar="DIR",
                   help="tokenized dataset folders (default: the synthetic default, built into DIR/data)")
    s.add_argument("--val-data", type=user_path, nargs="+", default=None, metavar="DIR",
                   help="held-out tokenized folders for the report (default: the synthetic held-out set without --data)")
    s.add_argument("--tokenizer", type=user_path, default=None, metavar="CKPT",
                   help="motion tokenizer folder (needed with --data; default without --data: a quick tiny one)")
    s.add_argument("--init", type=user_path, default=None, metavar="PATH",
                   help="local Hugging Face-format InternVL3 checkpoint to start from (default: random init of --config)")
    s.add_argument("--minutes", type=float, default=None, help="wall-clock budget of the training loop (checkpoints, then stops)")
    add_config_args(s, JobConfig, title="job options (beingh0.vla.pretrain.JobConfig)")
    add_config_args(s, DataConfig, title="sample options (beingh0.vla.data.DataConfig)")
    add_config_args(s, LossConfig, title="loss options (beingh0.vla.loss.LossConfig)")
    add_config_args(s, TrainConfig, defaults=PRETRAIN_TRAIN, exclude=("version",), title="training options (beingh0.train.TrainConfig)")
    s.set_defaults(fn=_pretrain)
