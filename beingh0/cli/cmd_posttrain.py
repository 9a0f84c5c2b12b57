"""``beingh0 posttrain``: post-train the Being-H0 policy (beingh0.policy.train) on LeRobot robot data.

Options are the fields of ``PostTrainJob``, ``PolicyConfig`` and ``TrainConfig`` (defaults:
``beingh0.policy.train.POSTTRAIN_TRAIN``), all generated, so their defaults live in the library only.
"""
from __future__ import annotations

from .common import user_path

HELP = "post-train the policy (proprio token, action queries, L1 head) on LeRobot robot demonstrations; exact resume"


def _posttrain(a):
    from ..core.config import config_from_args
    from ..policy.config import PolicyConfig
    from ..policy.train import POSTTRAIN_TRAIN, PostTrainJob, posttrain_command
    from ..train import TrainConfig

    train = config_from_args(TrainConfig, a, base=POSTTRAIN_TRAIN)
    posttrain_command(a.out, a.data, pretrained=a.pretrained, minutes=a.minutes, job=config_from_args(PostTrainJob, a),
                      policy_config=config_from_args(PolicyConfig, a), train=train, progress=train.progress)


def register(sub) -> None:
    from ..core.config import add_config_args
    from ..policy.config import PolicyConfig
    from ..policy.train import POSTTRAIN_TRAIN, PostTrainJob
    from ..train import TrainConfig

    s = sub.add_parser("posttrain", help=HELP, description=(
        "Post-train the Being-H0 policy (the VLA as encoder, a proprioception token, learnable action queries and an "
        "MLP head, L1 on normalised actions) on LeRobot v2.x/v3.0 folders. Without --data: synthetic Inspire-hand "
        "demonstrations written into OUT/data. The last --val-fraction of the episodes is held out; the end report "
        "gives the held-out open-loop L1 per action dimension next to the repeat-the-current-state baseline, with "
        "trajectory plots in OUT/eval. Running the same command again continues exactly."))
    s.add_argument("--out", type=user_path, required=True, help="output folder (checkpoints, policy/, loss.png, report.json, eval/)")
    s.add_argument("--data", type=user_path, nargs="+", default=None, metavar="DIR",
                   help="LeRobot dataset folders (default: synthetic robot demonstrations in OUT/data)")
    s.add_argument("--pretrained", type=user_path, default=None, metavar="DIR",
                   help="pretrained VLA: a `beingh0 pretrain` output folder or a VLA folder (default: the un-pretrained tiny backbone)")
    s.add_argument("--minutes", type=float, default=None, help="wall-clock budget of the training loop (checkpoints, then stops)")
    add_config_args(s, PostTrainJob, title="job options (beingh0.policy.train.PostTrainJob)")
    add_config_args(s, PolicyConfig, title="policy options (beingh0.policy.PolicyConfig)")
    add_config_args(s, TrainConfig, defaults=POSTTRAIN_TRAIN, exclude=("version",), title="training options (beingh0.train.TrainConfig)")
    s.set_defaults(fn=_posttrain)
