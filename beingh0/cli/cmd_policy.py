"""``beingh0 policy eval|study``: open-loop evaluation of a post-trained policy; the data-efficiency study."""
from __future__ import annotations

from .common import user_path

HELP = "evaluate a post-trained policy open-loop (per-dimension L1, plots); the data-efficiency study"


def _eval(a):
    import json

    from ..core.errors import UserValueError
    from ..policy.data import PolicyDataset, item_episodes, split_episodes
    from ..policy.evaluate import evaluate_open_loop, format_eval, plot_trajectories
    from ..policy.model import BeingH0Policy
    from ..policy.train import open_robot_data

    if a.stride < 1 or a.max_items < 1:
        raise UserValueError("--stride and --max-items must be >= 1")
    pol = BeingH0Policy.from_pretrained(a.policy)
    src = open_robot_data(a.data, pol.config.chunk, a.image_size)
    if [c.split("observation.images.")[-1] for c in src.meta.cameras] != list(pol.spec.cameras):
        raise UserValueError(f"the data's cameras {src.meta.cameras} differ from the policy's {list(pol.spec.cameras)}")
    if src.meta.state_dim != pol.spec.state_dim or src.meta.action_dim != pol.spec.action_dim:
        raise UserValueError(f"the data has state/action dims {src.meta.state_dim}/{src.meta.action_dim}, the policy "
                             f"{pol.spec.state_dim}/{pol.spec.action_dim}")
    eps = item_episodes(src)
    if a.split == "heldout":
        _, ids, _, held = split_episodes(eps, a.val_fraction)
        label = "held-out episodes"
        if not held:
            ids, label = None, "ALL episodes (one episode: nothing held out; includes training data)"
    else:
        ids, label = None, "all episodes of --data"
    ds = PolicyDataset(src, pol.builder, ids, episodes=eps, instruction=pol.config.instruction)
    r = evaluate_open_loop(pol, ds, stride=a.stride, max_items=a.max_items)
    print(format_eval(r, label))
    out = a.out or (a.policy / "eval")
    out.mkdir(parents=True, exist_ok=True)
    for ep in r["episodes"][: a.plot_episodes]:
        plot_trajectories(r, out / f"episode_{ep}.png", ep, title=label)
    (out / "eval.json").write_text(json.dumps({**{k: v for k, v in r.items() if k != "trajectories"}, "split": label}, indent=1))
    print(f"plots and eval.json in {out}")


def _study(a):
    from ..core.config import config_from_args
    from ..policy.config import PolicyConfig
    from ..policy.study import study_command
    from ..policy.train import POSTTRAIN_TRAIN, PostTrainJob
    from ..train import TrainConfig

    train = config_from_args(TrainConfig, a, base=POSTTRAIN_TRAIN)
    study_command(a.out, a.data, pretrained=a.pretrained, fractions=tuple(a.fractions), job=config_from_args(PostTrainJob, a),
                  policy_config=config_from_args(PolicyConfig, a), train=train, progress=train.progress)


def register(sub) -> None:
    from ..core.config import add_config_args
    from ..policy.config import PolicyConfig
    from ..policy.train import POSTTRAIN_TRAIN, PostTrainJob
    from ..train import TrainConfig

    p = sub.add_parser("policy", help=HELP, description=HELP)
    verbs = p.add_subparsers(dest="policy_verb", required=True, metavar="VERB")
    e = verbs.add_parser("eval", help="open-loop L1 per action dimension (dataset units) vs the repeat-state baseline; PNG plots",
                         description="Predict a chunk at every --stride-th frame of the episodes and compare it with the "
                                     "recorded actions (L1 per action dimension over the chunk's valid steps, in the "
                                     "dataset's units), next to repeating the current state; plots of the first predicted "
                                     "action vs the recorded one per joint.")
    e.add_argument("policy", type=user_path, metavar="DIR", help="policy folder (OUT/policy of `beingh0 posttrain`)")
    e.add_argument("--data", type=user_path, nargs="+", required=True, metavar="DIR", help="LeRobot dataset folders")
    e.add_argument("--split", choices=("heldout", "all"), default="heldout",
                   help="heldout: the last --val-fraction of the episodes (posttrain's split); all: every episode")
    e.add_argument("--val-fraction", type=float, default=PostTrainJob.val_fraction, help="held-out fraction (as in posttrain)")
    e.add_argument("--stride", type=int, default=1, help="evaluate every N-th frame")
    e.add_argument("--max-items", type=int, default=2048, help="at most this many frames")
    e.add_argument("--image-size", type=int, default=0, help="resize frames while decoding, as in training (0: as stored)")
    e.add_argument("--plot-episodes", type=int, default=2, help="episodes to plot")
    e.add_argument("--out", type=user_path, default=None, help="folder for plots and eval.json (default: DIR/eval)")
    e.set_defaults(fn=_eval)
    s = verbs.add_parser("study", help="data-efficiency study: 25/50/100 %% of the demonstrations, pretrained vs un-pretrained",
                         description="Post-train with each fraction of the training demonstrations from the pretrained VLA "
                                     "and from the un-pretrained backbone (same budget, same held-out episodes) and write "
                                     "study.md / study.json / study.png (held-out open-loop L1).")
    s.add_argument("--out", type=user_path, required=True, help="output folder (one run folder per (init, fraction))")
    s.add_argument("--pretrained", type=user_path, required=True, metavar="DIR", help="the pretrained VLA (pretrain run or VLA folder)")
    s.add_argument("--data", type=user_path, nargs="+", default=None, metavar="DIR",
                   help="LeRobot dataset folders (default: synthetic robot demonstrations in OUT/data)")
    s.add_argument("--fractions", type=float, nargs="+", default=[0.25, 0.5, 1.0], help="fractions of the training episodes")
    add_config_args(s, PostTrainJob, exclude=("data_fraction", "init_from"), title="job options (beingh0.policy.train.PostTrainJob)")
    add_config_args(s, PolicyConfig, title="policy options (beingh0.policy.PolicyConfig)")
    add_config_args(s, TrainConfig, defaults=POSTTRAIN_TRAIN, exclude=("version",), title="training options (beingh0.train.TrainConfig)")
    s.set_defaults(fn=_study)
