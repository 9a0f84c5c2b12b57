"""``beingh0 generate IMAGE "instruction"``: hand motion from the VLA, saved as MANO (npz) and drawn over the image (beingh0.vla.generate_run)."""
from __future__ import annotations

from .common import user_path

HELP = "generate hand motion for an image and an instruction with a pretrained VLA (npz + PNG strip + mp4)"


def _generate(a):
    from ..vla.generate import GenerationConfig
    from ..vla.generate_run import generate_files

    cfg = GenerationConfig(mode=a.mode, seconds=a.seconds, hands=a.hands, greedy=not a.sample, temperature=a.temperature,
                           top_p=a.top_p, seed=a.seed, use_cache=not a.no_cache)
    rec = generate_files(a.image, a.instruction, a.checkpoint, a.out, tokenizer=a.tokenizer, config=cfg, frame=a.frame,
                         intrinsics=a.intrinsics, device=a.device, render=not a.no_render)
    print(f"{rec['mode']}: {rec['seconds']} s of {rec['hands']}, valid blocks {100 * rec['valid_rate']:.1f} %, "
          f"{rec['seconds_taken']:.1f} s; wrote {', '.join(rec['files'].values())}")


def register(sub) -> None:
    s = sub.add_parser("generate", help=HELP,
                       description="Loads a VLA (a `beingh0 pretrain` run folder, or a VLA folder plus --tokenizer), "
                                   "generates SECONDS of motion for HANDS with block-formatted (default) or free "
                                   "decoding, decodes the motion tokens to camera-frame MANO and writes OUT/motion.npz, "
                                   "OUT/strip.png, OUT/motion.mp4 and OUT/generation.json.")
    s.add_argument("image", type=user_path, help="scene image (PNG/JPEG/...) or a video (see --frame)")
    s.add_argument("instruction", help="the task in words, e.g. \"pick up the cup\"")
    s.add_argument("--checkpoint", type=user_path, required=True, metavar="DIR",
                   help="pretraining run folder (DIR/model, DIR/motion_tokenizer) or a VLA folder (config.json)")
    s.add_argument("--tokenizer", type=user_path, default=None, metavar="DIR",
                   help="motion tokenizer folder (default: motion_tokenizer/ of the run folder)")
    s.add_argument("--seconds", type=int, default=2, help="seconds of motion (default: 2)")
    s.add_argument("--mode", choices=["block", "free"], default="block",
                   help="block: constrained, 100%% valid blocks (default); free: unconstrained, valid rate reported")
    s.add_argument("--hands", choices=["both", "left", "right"], default="both", help="(default: both)")
    s.add_argument("--sample", action="store_true", help="sample (temperature, top-p) instead of greedy decoding")
    s.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (default: 1.0)")
    s.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass (default: 1.0)")
    s.add_argument("--seed", type=int, default=0, help="sampling seed (default: 0)")
    s.add_argument("--no-cache", action="store_true", help="no KV cache (slow; a reference)")
    s.add_argument("--frame", type=int, default=0, help="frame of IMAGE when it is a video (default: 0)")
    s.add_argument("--intrinsics", type=float, nargs=4, default=None, metavar=("FX", "FY", "CX", "CY"),
                   help="camera of IMAGE in pixels for drawing (default: Being-H0's 105-degree virtual camera)")
    s.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    s.add_argument("--no-render", action="store_true", help="write the npz and JSON only")
    s.add_argument("--out", type=user_path, default="out/generate", help="output folder (default: out/generate)")
    s.set_defaults(fn=_generate)
