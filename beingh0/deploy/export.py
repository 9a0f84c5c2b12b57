"""ONNX export of a deployable policy (:mod:`.spec`) with torch's dynamo exporter, and its check.

:func:`export_onnx` exports ``module(*inputs) -> actions`` with a dynamic batch dimension (every
``"batch"`` dimension of the spec is one ``torch.export.Dim``), stores the spec in the file's
``metadata_props`` (:data:`.spec.SPEC_KEY`), runs the TensorRT coverage check
(:mod:`.trt_ops`) and verifies the file in ONNX Runtime against PyTorch at two batch sizes.
Tolerance: ``ORT_ATOL`` + ``ORT_RTOL`` x |reference| (float32; the tiny stand-in matches to ~1e-6).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..core.errors import UserValueError
from .spec import SPEC_KEY, PolicySpec

__all__ = ["ORT_ATOL", "ORT_RTOL", "ExportReport", "example_inputs", "export_onnx", "read_onnx_spec", "verify_onnx"]

#: ONNX Runtime vs PyTorch (float32, CPU): |ort - torch| <= ORT_ATOL + ORT_RTOL * |torch|.
ORT_ATOL, ORT_RTOL = 1e-4, 1e-3

_TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
                 "int64": torch.int64, "int32": torch.int32, "uint8": torch.uint8, "bool": torch.bool}


def example_inputs(spec: PolicySpec, batch: int = 2, *, seed: int = 0, device=None) -> dict[str, torch.Tensor]:
    """Random inputs of the spec's shapes (ids from ``meta['prompt_ids']`` when there, masks all ones)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for t in spec.inputs:
        shape, dt = t.concrete(batch), _TORCH_DTYPES[t.dtype]
        if t.name == "attention_mask" or dt == torch.bool:
            x = torch.ones(shape, dtype=dt)
        elif t.name == "input_ids" and "prompt_ids" in spec.meta:
            x = torch.tensor(spec.meta["prompt_ids"], dtype=dt).expand(shape).clone()
        elif not dt.is_floating_point:
            x = torch.randint(0, 100, shape, generator=g, dtype=dt)
        else:
            x = torch.randn(shape, generator=g).to(dt)
        out[t.name] = x.to(device) if device is not None else x
    return out


def _device(module: torch.nn.Module) -> torch.device:
    p = next(iter(module.parameters()), None)
    return p.device if p is not None else torch.device("cpu")


@dataclass
class ExportReport:
    path: str
    bytes: int
    nodes: int
    op_types: int
    export_s: float
    coverage: object = None  # trt_ops.CoverageReport
    ort_max_abs_err: float | None = None
    ort_ok: bool | None = None
    ort_batches: list[int] = field(default_factory=list)

    def raise_for_problems(self, *, allow_tensorrt_refusals: bool = False) -> None:
        """``UserValueError`` when TensorRT would refuse the graph (unless allowed) or ONNX Runtime disagrees."""
        if self.coverage is not None and not self.coverage.ok and not allow_tensorrt_refusals:
            raise UserValueError(f"{self.path}: TensorRT would refuse this graph: {self.coverage.summary()} "
                                 "(--allow-tensorrt-refusals keeps the file for ONNX Runtime)")
        if self.ort_ok is False:
            raise UserValueError(f"{self.path}: ONNX Runtime disagrees with PyTorch (max |err| {self.ort_max_abs_err:.3g}); "
                                 "the export is wrong")

    def summary(self) -> str:
        lines = [(f"{self.path}: {self.bytes / 2**20:.2f} MiB, {self.nodes} nodes, {self.op_types} op types, "
                  f"exported in {self.export_s:.1f} s")]
        if self.coverage is not None:
            lines.append(self.coverage.summary())
        if self.ort_ok is not None:
            lines.append(f"ONNX Runtime vs PyTorch at batch {self.ort_batches}: max |err| {self.ort_max_abs_err:.2e} "
                         f"({'ok' if self.ort_ok else 'FAILED'}, tolerance {ORT_ATOL:g} + {ORT_RTOL:g}*|ref|)")
        return "\n".join(lines)


def export_onnx(module: torch.nn.Module, spec: PolicySpec, path, *, max_batch: int = 64, opset: int = 20,
                check_tensorrt: bool = True, verify: bool = True, progress: Callable[[str], None] | None = None,
                external_data: bool | None = None, allow_tensorrt_refusals: bool = False) -> ExportReport:
    """Export ``module`` to ``path`` (see the module docstring); raises ``UserValueError`` when the
    graph has an operator TensorRT refuses (``check_tensorrt``; ``allow_tensorrt_refusals`` only reports
    it, for an ONNX Runtime-only deployment) or ONNX Runtime disagrees (``verify``).
    ``external_data``: weights beside the file (None: when they pass 1.8 GiB; protobuf's limit is 2 GiB).
    """
    import onnx

    say = progress or (lambda s: None)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = module.eval()
    device = _device(module)
    ex = example_inputs(spec, 2, device=device)
    batch = torch.export.Dim("batch", min=1, max=max_batch)
    dyn = {t.name: {ax: batch for ax in t.dynamic_axes} for t in spec.inputs}
    say(f"exporting with the dynamo exporter (opset {opset}, dynamic batch 1..{max_batch})")
    t0 = time.perf_counter()
    with torch.no_grad():
        prog = torch.onnx.export(module, tuple(ex[n] for n in spec.input_names), dynamo=True, opset_version=opset,
                                 input_names=spec.input_names, output_names=[spec.output_name], dynamic_shapes=dyn,
                                 optimize=True, verbose=False, report=False)
    export_s = time.perf_counter() - t0
    model = prog.model_proto
    n_params = sum(p.numel() * p.element_size() for p in module.parameters())
    ext = external_data if external_data is not None else n_params > 1.8 * 2**30
    say(f"writing {path}" + (" (+ external weights)" if ext else ""))
    entry = model.metadata_props.add()
    entry.key, entry.value = SPEC_KEY, spec.to_json()
    if ext:
        onnx.save_model(model, str(path), save_as_external_data=True, location=path.name + ".data")
    else:
        onnx.save_model(model, str(path))
    model = onnx.load(str(path), load_external_data=False)
    nodes = len(model.graph.node)
    rep = ExportReport(str(path), path.stat().st_size + (Path(str(path) + ".data").stat().st_size if ext else 0),
                       nodes, len({(n.domain, n.op_type) for n in model.graph.node}), export_s)
    if check_tensorrt:
        from .trt_ops import check_tensorrt_coverage

        say("checking every node against TensorRT's operator matrix")
        rep.coverage = check_tensorrt_coverage(model)
    if verify:
        say("verifying in ONNX Runtime against PyTorch")
        rep.ort_batches = [1, 3]
        rep.ort_max_abs_err, rep.ort_ok = verify_onnx(path, module, spec, batches=rep.ort_batches)
    rep.raise_for_problems(allow_tensorrt_refusals=allow_tensorrt_refusals)
    return rep


def verify_onnx(path, module: torch.nn.Module, spec: PolicySpec, *, batches=(1, 3), atol: float = ORT_ATOL,
                rtol: float = ORT_RTOL, seed: int = 1) -> tuple[float, bool]:
    """(max |ort - torch|, within tolerance) over random inputs at each batch size (CPU provider)."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    device = _device(module)
    worst, ok = 0.0, True
    for b in batches:
        ex = example_inputs(spec, b, seed=seed + b)
        got = sess.run([spec.output_name], {k: v.numpy() for k, v in ex.items()})[0]
        with torch.no_grad():
            ref = module(*(ex[n].to(device) for n in spec.input_names)).float().cpu().numpy()
        if got.shape != ref.shape:
            return float("inf"), False
        err = np.abs(got.astype(np.float64) - ref)
        worst = max(worst, float(err.max()))
        ok &= bool(np.all(err <= atol + rtol * np.abs(ref)))
    return worst, ok


def read_onnx_spec(path) -> PolicySpec:
    """The :class:`PolicySpec` stored in an exported ONNX file."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    for p in model.metadata_props:
        if p.key == SPEC_KEY:
            return PolicySpec.from_json(p.value)
    raise UserValueError(f"{path} has no beingh0 policy spec in its metadata; export it with beingh0 export")
