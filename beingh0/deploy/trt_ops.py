"""TensorRT's ONNX operator coverage, checked offline over every node of an exported graph.

The data file ``data/tensorrt_onnx_operators.json`` is TensorRT 10.0's operator support matrix
(onnx/onnx-tensorrt, docs/operators.md at commit 96e78110, Apache-2.0), turned into data by
:func:`parse_matrix` (regenerate with ``python -m beingh0.deploy.trt_ops MATRIX.md``). The checker
(:func:`check_tensorrt_coverage`) refuses, per node (subgraphs of If/Loop/Scan included):

* a domain other than the default ONNX domain (custom / ``com.microsoft`` ops need a plugin);
* an operator the matrix does not list or marks unsupported;
* a data-tensor type outside the operator's "Supported Types" (where shape inference knows it: the
  first input, every input of element-wise and joining ops, a Cast's output; DOUBLE is cast down by TensorRT and reported as a warning);
* the restrictions of the matrix that can be read off the graph: ``Resize`` modes, antialiasing and
  aspect policy; pooling ``dilations``; the extra outputs of ``LayerNormalization`` and ``MaxPool``;
  ``TopK`` ``sorted`` and ``K``; ``ScatterND`` ``reduction``; ``LSTM`` ``input_forget``/``layout``;
  ``Constant`` sparse/string values; ``axes`` inputs that must be initializers (Reduce*, Slice,
  Squeeze, Pad, CumSum) or constants (Unsqueeze); Dropout's ``training_mode``; UINT8 tensors
  inside the network (TensorRT: network inputs and outputs only); non-zero quantisation zero points;
* a default-domain opset outside the supported range (9-20).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

from ..core.errors import UserValueError

__all__ = ["DATA_FILE", "CoverageReport", "check_tensorrt_coverage", "load_matrix", "parse_matrix"]

DATA_FILE = "tensorrt_onnx_operators.json"
SOURCE = ("github.com/onnx/onnx-tensorrt docs/operators.md at commit 96e781103cfc4adf4a6bb557e94bac8e693f6f4c "
          "(2024-06-17), Apache-2.0; copy in reference/third_party/onnx-tensorrt-operators.md")

# ONNX TensorProto element types -> the matrix's type names
_ONNX_TYPES = {1: "FP32", 2: "UINT8", 3: "INT8", 6: "INT32", 7: "INT64", 9: "BOOL", 10: "FP16", 11: "DOUBLE",
               16: "BF16", 17: "FP8", 18: "FP8", 19: "FP8", 20: "FP8", 22: "INT4", 4: "UINT16", 5: "INT16",
               8: "STRING", 12: "UINT32", 13: "UINT64", 14: "COMPLEX64", 15: "COMPLEX128", 21: "UINT4"}
# which input holds "axes" where the matrix says it must be an initializer (or constant)
_AXES_INPUT = {"Slice": 3, "Squeeze": 1, "Unsqueeze": 1, "Pad": 3, "CumSum": 1,
               **{f"Reduce{r}": 1 for r in ("L1", "L2", "LogSum", "LogSumExp", "Max", "Mean", "Min", "Prod", "Sum",
                                            "SumSquare")}}


# ops whose every input is a data tensor of the checked type
_ALL_DATA_INPUTS = {"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Mean", "Sum", "Mod", "PRelu", "Equal", "Greater",
                    "GreaterOrEqual", "Less", "LessOrEqual", "And", "Or", "Xor", "Concat", "MatMul", "Gemm"}


def parse_matrix(text: str) -> dict:
    """The operator matrix markdown -> data (version, opset range, global types, per-op entries)."""
    m = re.search(r"TensorRT (\d+\.\d+) supports operators in the inclusive range of opset (\d+) to opset (\d+)", text)
    if not m:
        raise UserValueError("not TensorRT's operator matrix: no 'TensorRT X.Y supports operators ... opset A to opset B' line")
    types = re.search(r"supports the following ONNX data types: ([A-Z0-9, and]+)", text)
    ops = {}
    for line in text.splitlines():
        if not line.startswith("| ") or line.startswith(("| Operator", "|--")):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 2 or not re.fullmatch(r"[A-Za-z0-9]+", cells[0]):
            continue
        op, sup = cells[0], cells[1]
        tlist = [t.strip().replace("INF64", "INT64") for t in (cells[2] if len(cells) > 2 else "").split(",") if t.strip()]
        restr = re.sub(r"\s+", " ", (cells[3] if len(cells) > 3 else "").replace("<br />", " ")).strip()
        ops[op] = {"supported": sup == "Y", "types": tlist, "restrictions": restr}
    global_types = [t.strip() for t in re.split(r",|\band\b", types.group(1)) if t.strip()] if types else []
    return {"source": SOURCE, "tensorrt_version": m.group(1), "opset_min": int(m.group(2)), "opset_max": int(m.group(3)),
            "types": [{"FLOAT32": "FP32", "FLOAT16": "FP16", "BFLOAT16": "BF16"}.get(t, t) for t in global_types],
            "ops": ops}


@lru_cache(maxsize=1)
def load_matrix() -> dict:
    """The matrix shipped with beingh0 (``beingh0/deploy/data/tensorrt_onnx_operators.json``)."""
    return json.loads(resources.files(__package__).joinpath("data").joinpath(DATA_FILE).read_text())


@dataclass
class CoverageReport:
    """Result of :func:`check_tensorrt_coverage`: ``ok`` when no node is refused."""

    tensorrt_version: str
    nodes: int
    ops: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        head = f"TensorRT {self.tensorrt_version} coverage: {self.nodes} nodes, {len(self.ops)} op types"
        if self.ok:
            return head + ": all supported" + (f" ({len(self.warnings)} warnings)" if self.warnings else "")
        more = f" and {len(self.errors) - 3} more" if len(self.errors) > 3 else ""
        return head + f": {len(self.errors)} refused: " + "; ".join(self.errors[:3]) + more


def _attr(node, name, default=None):
    import onnx

    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _s(v):
    return v.decode() if isinstance(v, bytes) else v


def _restrictions(node, constants: set[str], used: set[str]) -> list[str]:
    """Graph-checkable restrictions of the matrix for ``node`` (messages; empty when fine)."""
    op, out = node.op_type, []
    if op == "Resize":
        mode = _s(_attr(node, "mode", b"nearest"))
        if mode not in ("nearest", "linear"):
            out.append(f"mode {mode!r} (TensorRT: nearest, linear)")
        ctm = _s(_attr(node, "coordinate_transformation_mode", b"half_pixel"))
        if ctm not in ("half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn", "asymmetric", "align_corners"):
            out.append(f"coordinate_transformation_mode {ctm!r}")
        if mode == "nearest":
            nm = _s(_attr(node, "nearest_mode", b"round_prefer_floor"))
            if nm not in ("floor", "ceil", "round_prefer_floor", "round_prefer_ceil"):
                out.append(f"nearest_mode {nm!r}")
        if _attr(node, "antialias", 0):
            out.append("antialias=1 (antialiasing is not supported)")
        if _s(_attr(node, "keep_aspect_ratio_policy", b"stretch")) != "stretch":
            out.append("keep_aspect_ratio_policy other than 'stretch'")
    if op in ("AveragePool", "MaxPool", "LpPool"):
        d = _attr(node, "dilations", [])
        if d and any(x != 1 for x in d):
            out.append(f"dilations {list(d)} (must be empty or all ones)")
        k = _attr(node, "kernel_shape", [])
        if op != "LpPool" and k and len(k) not in (2, 3):
            out.append(f"{len(k)}D pooling (2D or 3D only)")
    if op == "MaxPool" and len(node.output) > 1 and node.output[1] in used:
        out.append("the Indices output is used (unsupported)")
    if op == "LayerNormalization" and any(o and o in used for o in node.output[1:]):
        out.append("an output other than Y is used (only the first output is supported)")
    if op == "TopK" and _attr(node, "sorted", 1) != 1:
        out.append("sorted=0 (must be 1)")
    if op == "ScatterND" and _s(_attr(node, "reduction", b"none")) != "none":
        out.append("reduction is not supported")
    if op == "LSTM":
        if _attr(node, "input_forget", 0) != 0:
            out.append("input_forget must be 0")
        if _attr(node, "layout", 0) != 0:
            out.append("layout must be 0")
    if op == "Constant" and any(a.name in ("sparse_value", "value_string", "value_strings") for a in node.attribute):
        out.append("sparse_value / value_string(s) attributes are unsupported")
    if op == "Dropout" and len(node.input) > 2 and node.input[2] and node.input[2] not in constants:
        out.append("training_mode is computed at run time (must be an initializer that is False)")
    i = _AXES_INPUT.get(op)
    if i is not None and len(node.input) > i and node.input[i] and node.input[i] not in constants:
        out.append(f"input {i} (axes) is computed at run time (must be an initializer)")
    return out


def check_tensorrt_coverage(model, matrix: dict | None = None) -> CoverageReport:
    """Check every node of ``model`` (an ``onnx.ModelProto`` or a path) against the matrix."""
    import onnx

    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(str(model), load_external_data=False)
    matrix = matrix or load_matrix()
    if model.functions:  # the dynamo exporter may leave local functions: check what TensorRT would see
        model = onnx.inliner.inline_local_functions(model)
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except Exception:  # noqa: BLE001 -- types are a best effort; the op check still runs
        inferred = model
    rep = CoverageReport(matrix["tensorrt_version"], 0)
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx") and not (matrix["opset_min"] <= imp.version <= matrix["opset_max"]):
            rep.errors.append(f"opset {imp.version} is outside TensorRT's {matrix['opset_min']}-{matrix['opset_max']}")
    types: dict[str, int] = {}
    g = inferred.graph
    for vi in list(g.input) + list(g.output) + list(g.value_info):
        if vi.type.HasField("tensor_type"):
            types[vi.name] = vi.type.tensor_type.elem_type
    for init in g.initializer:
        types[init.name] = init.data_type

    io_names = {v.name for v in g.input} | {v.name for v in g.output}
    inits = {i.name: i for i in g.initializer}

    def visit(graph, where: str):
        constants = {i.name for i in graph.initializer}
        used = {n for node in graph.node for n in node.input} | {o.name for o in graph.output}
        for node in graph.node:
            if node.op_type == "Constant":
                constants.update(node.output)
        for node in graph.node:
            rep.nodes += 1
            key = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}"
            rep.ops[key] = rep.ops.get(key, 0) + 1
            label = f"{node.op_type} {node.name or '(unnamed)'}{where}"
            if node.domain not in ("", "ai.onnx"):
                rep.errors.append(f"{label}: domain {node.domain!r} is not the ONNX domain (needs a TensorRT plugin)")
                continue
            entry = matrix["ops"].get(node.op_type)
            if entry is None or not entry["supported"]:
                rep.errors.append(f"{label}: operator {node.op_type} is {'not listed' if entry is None else 'unsupported'}"
                                  f" in TensorRT {matrix['tensorrt_version']}")
                continue
            allowed = set(entry["types"])
            # "Supported Types" are the type of the operator's data tensor: its first input (all inputs of
            # the element-wise and joining ops; a Cast's target type too). Index, shape and axes inputs
            # (Gather indices, Reshape shape, CumSum axis...) are INT64 by the ONNX spec and not meant.
            if node.op_type in _ALL_DATA_INPUTS:
                data = list(node.input)
            elif node.op_type == "Where":
                data = list(node.input[1:])
            else:
                data = list(node.input[:1])
            for name in data + (list(node.output) if node.op_type in ("Cast", "CastLike") else []):
                t = _ONNX_TYPES.get(types.get(name, 0))
                if not name or t is None or not allowed:
                    continue
                if t == "DOUBLE":
                    rep.warnings.append(f"{label}: {name} is DOUBLE (TensorRT casts it to FP32)")
                elif t not in allowed:
                    rep.errors.append(f"{label}: tensor {name} has type {t}; TensorRT supports {sorted(allowed)} here")
            rep.errors.extend(f"{label}: {msg}" for msg in _restrictions(node, constants, used))
            # "UINT8 is only supported as network input or output tensor types"
            for name in list(node.input) + list(node.output):
                if name and _ONNX_TYPES.get(types.get(name, 0)) == "UINT8" and name not in io_names:
                    rep.errors.append(f"{label}: {name} is UINT8 inside the network (TensorRT: only as a network "
                                      "input or output)")
            if node.op_type in ("QuantizeLinear", "DequantizeLinear") and len(node.input) > 2:
                zp = inits.get(node.input[2])
                if zp is not None and np.any(onnx.numpy_helper.to_array(zp) != 0):
                    rep.errors.append(f"{label}: the zero point must be 0")
            for a in node.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    visit(a.g, f" (in {node.op_type}.{a.name})")
                elif a.type == onnx.AttributeProto.GRAPHS:
                    for sub in a.graphs:
                        visit(sub, f" (in {node.op_type}.{a.name})")

    visit(model.graph, "")
    return rep


def _main(argv=None) -> None:  # python -m beingh0.deploy.trt_ops MATRIX.md: regenerate the data file
    import sys

    src = Path((argv or sys.argv[1:])[0])
    data = parse_matrix(src.read_text())
    dst = Path(__file__).parent / "data" / DATA_FILE
    head = {k: v for k, v in data.items() if k != "ops"}
    ops = ",\n".join(f"  {json.dumps(k)}: {json.dumps(v, sort_keys=True)}" for k, v in sorted(data["ops"].items()))
    dst.write_text(json.dumps(head, sort_keys=True)[:-1] + ',\n "ops": {\n' + ops + "\n }\n}\n")
    print(f"{dst}: TensorRT {data['tensorrt_version']}, {len(data['ops'])} operators "
          f"({sum(o['supported'] for o in data['ops'].values())} supported)")


if __name__ == "__main__":
    _main()
