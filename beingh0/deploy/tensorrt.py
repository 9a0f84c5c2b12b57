"""TensorRT engine build and execution with the real ``tensorrt`` Python API.

``tensorrt`` cannot be installed on the development machines (ENGINEERING.md): everything that
touches it imports it inside the function and raises :class:`TensorRTUnavailable` (a one-line
``UserError``) elsewhere. What does not need it -- optimisation profiles from the spec's dynamic
shapes and the engine file format with its metadata -- is plain code, unit-tested everywhere.

Engine file (``.engine``)::

    b"BH0TRT01" | uint32 little-endian header length | header JSON (utf-8) | TensorRT plan bytes

The header holds the policy spec (names, shapes, dtypes, normalisation statistics, metadata), the
optimisation profile, the precision and the versions (TensorRT, beingh0, torch, ONNX opset).
"""
from __future__ import annotations

import json
import struct
from pathlib import Path

from ..core.errors import UserError, UserValueError
from .spec import PolicySpec

__all__ = [
    "MAGIC",
    "TensorRTEngine",
    "TensorRTUnavailable",
    "build_engine",
    "pack_engine",
    "profile_shapes",
    "require_tensorrt",
    "unpack_engine",
]

MAGIC = b"BH0TRT01"


class TensorRTUnavailable(UserError, ImportError):
    """``tensorrt`` does not import here."""


def require_tensorrt():
    try:
        import tensorrt
    except ImportError as e:
        raise TensorRTUnavailable(f"TensorRT is not available here ({e}); install NVIDIA's tensorrt wheel on the robot PC "
                                  "(pip install tensorrt from pypi.nvidia.com) or use --format onnx / --runtime onnxruntime") from None
    return tensorrt


def profile_shapes(spec: PolicySpec, *, min_batch: int = 1, opt_batch: int = 1, max_batch: int = 8
                   ) -> dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]:
    """{input name: (min, opt, max) shape}: the one optimisation profile of the spec's dynamic batch."""
    if not (1 <= min_batch <= opt_batch <= max_batch):
        raise UserValueError(f"need 1 <= min_batch <= opt_batch <= max_batch, got {min_batch}, {opt_batch}, {max_batch}")
    return {t.name: (t.concrete(min_batch), t.concrete(opt_batch), t.concrete(max_batch)) for t in spec.inputs}


def pack_engine(plan: bytes, header: dict) -> bytes:
    """An engine file: :data:`MAGIC`, the header's length and JSON, then the plan."""
    if "spec" not in header:
        raise ValueError("the engine header needs the policy spec")
    js = json.dumps(header, sort_keys=True).encode()
    return MAGIC + struct.pack("<I", len(js)) + js + bytes(plan)


def unpack_engine(blob: bytes) -> tuple[dict, bytes]:
    """(header, plan) of an engine file written by :func:`pack_engine`."""
    if len(blob) < 12 or blob[:8] != MAGIC:
        raise UserValueError("not a beingh0 TensorRT engine (bad magic); build it with beingh0 export --format tensorrt")
    (n,) = struct.unpack("<I", blob[8:12])
    if 12 + n > len(blob):
        raise UserValueError("truncated beingh0 TensorRT engine (header longer than the file)")
    try:
        header = json.loads(blob[12:12 + n])
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserValueError(f"corrupt beingh0 TensorRT engine header ({e})") from None
    PolicySpec.from_dict(header.get("spec", {}))  # validates
    return header, blob[12 + n:]


def engine_header(spec: PolicySpec, profile: dict, precision: str, *, tensorrt_version: str, opset: int | None) -> dict:
    import torch

    from .. import __version__

    return {"spec": spec.to_dict(), "inputs": spec.input_names, "outputs": [spec.output_name],
            "profile": {k: [list(s) for s in v] for k, v in profile.items()}, "precision": precision,
            "versions": {"tensorrt": tensorrt_version, "beingh0": __version__, "torch": torch.__version__, "onnx_opset": opset}}


def build_engine(onnx_path, out_path, *, precision: str = "fp16", min_batch: int = 1, opt_batch: int = 1,
                 max_batch: int = 8, timing_cache=None, workspace_gib: float = 4.0, progress=None) -> dict:
    """Build a TensorRT engine from an exported ONNX file; returns the header written with it.

    ``precision``: fp32, fp16 or bf16 (builder flags; TensorRT keeps fp32 where it must).
    ``timing_cache``: a file read before and written after the build (faster rebuilds).
    """
    import onnx

    from .export import read_onnx_spec

    trt = require_tensorrt()
    say = progress or (lambda s: None)
    if precision not in ("fp32", "fp16", "bf16"):
        raise UserValueError(f"precision must be fp32, fp16 or bf16, got {precision!r}")
    spec = read_onnx_spec(onnx_path)
    opset = next((i.version for i in onnx.load(str(onnx_path), load_external_data=False).opset_import if i.domain == ""), None)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # TensorRT 10: explicit batch is the only mode
    parser = trt.OnnxParser(network, logger)
    say(f"parsing {onnx_path}")
    if not parser.parse_from_file(str(onnx_path)):
        errs = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise UserValueError(f"TensorRT's ONNX parser refused {onnx_path}: {errs}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * 2**30))
    if precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    elif precision == "bf16":
        config.set_flag(trt.BuilderFlag.BF16)
    cache_bytes = Path(timing_cache).read_bytes() if timing_cache and Path(timing_cache).is_file() else b""
    cache = config.create_timing_cache(cache_bytes)
    config.set_timing_cache(cache, ignore_mismatch=False)
    prof = profile_shapes(spec, min_batch=min_batch, opt_batch=opt_batch, max_batch=max_batch)
    profile = builder.create_optimization_profile()
    for name, (lo, opt, hi) in prof.items():
        profile.set_shape(name, lo, opt, hi)
    config.add_optimization_profile(profile)
    say(f"building the {precision} engine (batch {min_batch}..{max_batch}, opt {opt_batch}); minutes for a large model")
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise UserValueError(f"TensorRT failed to build an engine from {onnx_path} (see its log above)")
    if timing_cache:
        Path(timing_cache).write_bytes(bytes(config.get_timing_cache().serialize()))
    header = engine_header(spec, prof, precision, tensorrt_version=trt.__version__, opset=opset)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(pack_engine(bytes(plan), header))
    tmp.replace(out)
    return header


class TensorRTEngine:
    """Runs an engine file on CUDA with torch tensors as buffers (``execute_async_v3`` on torch's stream)."""

    def __init__(self, path, device: str = "cuda"):
        import torch

        trt = require_tensorrt()
        self.header, plan = unpack_engine(Path(path).read_bytes())
        self.spec = PolicySpec.from_dict(self.header["spec"])
        self.device = torch.device(device)
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(plan)
        if self.engine is None:
            raise UserValueError(f"{path}: TensorRT could not deserialise the plan (built with TensorRT "
                                 f"{self.header['versions']['tensorrt']}, this is {trt.__version__}); rebuild it here")
        self.context = self.engine.create_execution_context()
        self._trt = trt

    def __call__(self, inputs: dict):
        import torch

        from .export import _TORCH_DTYPES

        stream = torch.cuda.current_stream(self.device)
        keep = []
        for t in self.spec.inputs:
            x = torch.as_tensor(inputs[t.name]).to(self.device, _TORCH_DTYPES[t.dtype]).contiguous()
            keep.append(x)
            self.context.set_input_shape(t.name, tuple(x.shape))
            self.context.set_tensor_address(t.name, x.data_ptr())
        name = self.spec.output_name
        shape = tuple(self.context.get_tensor_shape(name))
        trt = self._trt
        dts = {trt.float32: torch.float32, trt.float16: torch.float16}
        if hasattr(trt, "bfloat16"):
            dts[trt.bfloat16] = torch.bfloat16
        dt = dts[self.engine.get_tensor_dtype(name)]
        out = torch.empty(shape, dtype=dt, device=self.device)
        self.context.set_tensor_address(name, out.data_ptr())
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError("TensorRT execute_async_v3 failed")
        return out.float()
