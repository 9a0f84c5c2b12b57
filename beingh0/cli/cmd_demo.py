"""``beingh0 demo``: the README's main job, every stage end to end (beingh0.app.demo; each stage has its own command)."""
from __future__ import annotations

from .common import data_dir_arg, default_data_dir, positive_minutes, user_path

HELP = ("main job: synthetic hand data -> motion tokenizer -> pretrained VLA -> generation and evaluation -> "
        "post-trained policy -> ONNX export -> policy server and control loop; HTML report")


def _demo(a):
    from ..app.demo import run_demo

    run_demo(a.out, minutes=a.minutes, scale=a.scale, init=a.init, seed=a.seed, data_dir=a.data_dir or default_data_dir(),
             episodes=a.episodes, eval_samples=a.eval_samples, control_steps=a.control_steps, stages=a.stages,
             progress=not a.quiet)


def register(sub) -> None:
    s = sub.add_parser(
        "demo", help=HELP,
        description="The whole project on the embedded default, within --minutes: synthesise UniHand episodes, train "
                    "the part-level motion tokenizer (mm table: synthetic and, with ../shared/data, real hands), "
                    "pretrain the VLA, generate and render motion for a held-out scene, evaluate (paper-style tables), "
                    "post-train the policy on synthetic Inspire-hand demonstrations (and the real G1 episode when "
                    "../shared/data has it), export it to ONNX (and TensorRT where installed), serve it on loopback "
                    "and run the control loop against a simulated robot. Writes OUT/report.html. Each stage resumes "
                    "(the same command continues an interrupted run) and has its own command, printed as it starts.")
    s.add_argument("--out", type=user_path, default="out/demo",
                   help="output folder: one sub-folder per stage, report.html, demo.json (default: out/demo)")
    s.add_argument("--minutes", type=positive_minutes, default=10.0,
                   help="time budget in minutes shared by the training stages; synthesis, export and evaluation come on "
                        "top (default: 10, about 9 minutes in all on a 2-core CPU; 0.3 is a smoke test)")
    from ..app.demo import SCALES

    s.add_argument("--scale", choices=SCALES, default="tiny",
                   help="VLA architecture: tiny (CPU) or InternVL3's 1B / 8B / 14B (GPU; need --init) (default: tiny)")
    s.add_argument("--init", type=user_path, default=None,
                   help="a local InternVL3 checkpoint folder (Hugging Face format) to start the VLA from")
    s.add_argument("--stages", nargs="+", default=None, metavar="STAGE",
                   help="run only these stages (the others' earlier results are reused): tokenizer pretrain generate "
                        "evaluate posttrain posttrain-real export control")
    s.add_argument("--eval-samples", type=int, default=16, help="samples per task and mode in the evaluation (default: 16)")
    s.add_argument("--control-steps", type=int, default=200, help="control-loop steps against the simulated robot (default: 200)")
    s.add_argument("--quiet", action="store_true", help="no progress output, only the final summary")
    s.add_argument("--episodes", type=int, default=48, help="synthetic training episodes of 6 s, both hands (default: 48)")
    data_dir_arg(s)
    s.add_argument("--seed", type=int, default=0, help="seed of the synthetic data and the training (default: 0)")
    s.set_defaults(fn=_demo)
