"""``beingh0 export POLICY --format onnx|tensorrt --out FILE``: the policy as an ONNX file or a TensorRT
engine (beingh0.deploy)."""
from __future__ import annotations

from .common import user_path

HELP = "export a policy to ONNX (verified in ONNX Runtime, TensorRT coverage checked) or a TensorRT engine"


def _export(a):
    from ..deploy.commands import export_command, parse_image_sizes

    export_command(a.policy, a.format, a.out, max_batch=a.max_batch, opt_batch=a.opt_batch, precision=a.precision,
                   timing_cache=a.timing_cache, device=a.device, verify=not a.no_verify, quiet=a.quiet,
                   allow_tensorrt_refusals=a.allow_tensorrt_refusals, image_sizes=parse_image_sizes(a.image_size),
                   instruction=a.instruction)


def policy_args(s) -> None:
    """What deploying a trained policy fixes (shared with ``beingh0 serve``)."""
    s.add_argument("--image-size", action="append", default=None, metavar="CAMERA=WxH",
                   help="image size of a camera as the robot records it (default: from the policy's intrinsics); repeat per camera")
    s.add_argument("--instruction", default=None, help="the task instruction baked into the prompt (default: the policy's)")


def register(sub) -> None:
    s = sub.add_parser("export", help=HELP, description="Exports the tensor-only policy forward (vision tower, projector, "
                       "LLM prefill, action head) with torch's dynamo exporter and a dynamic batch dimension, checks "
                       "every node against TensorRT 10.0's operator matrix, verifies the file in ONNX Runtime against "
                       "PyTorch, and with --format tensorrt builds an engine (needs NVIDIA's tensorrt package and a GPU).")
    s.add_argument("policy", metavar="POLICY", help="policy checkpoint folder, or standin[:PRESET] (random tiny-VLA stand-in)")
    s.add_argument("--format", choices=["onnx", "tensorrt"], default="onnx", help="(default: onnx)")
    s.add_argument("--out", type=user_path, required=True, help="output file (.onnx or .engine; tensorrt also writes the .onnx)")
    s.add_argument("--max-batch", type=int, default=8, help="largest batch of the dynamic dimension / engine profile (default: 8)")
    s.add_argument("--opt-batch", type=int, default=1, help="TensorRT profile's optimal batch (default: 1)")
    s.add_argument("--precision", choices=["fp32", "fp16", "bf16"], default="fp16", help="TensorRT precision (default: fp16)")
    s.add_argument("--timing-cache", type=user_path, default=None, help="TensorRT timing cache file (read and updated)")
    s.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where the policy runs for export (default: cpu)")
    s.add_argument("--no-verify", action="store_true", help="skip the ONNX Runtime check")
    policy_args(s)
    s.add_argument("--allow-tensorrt-refusals", action="store_true",
                   help="--format onnx: keep a graph TensorRT would refuse (reported) for ONNX Runtime")
    s.add_argument("--quiet", action="store_true", help="no progress lines")
    s.set_defaults(fn=_export)
