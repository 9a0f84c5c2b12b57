"""TensorRT: the operator matrix as data, the per-node coverage checker, profiles and the engine
format (without TensorRT), and the real build where ``tensorrt`` imports."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from beingh0.core.errors import UserValueError
from beingh0.deploy.spec import BATCH, PolicySpec, TensorSpec
from beingh0.deploy.tensorrt import (
    MAGIC,
    TensorRTUnavailable,
    engine_header,
    pack_engine,
    profile_shapes,
    require_tensorrt,
    unpack_engine,
)
from beingh0.deploy.trt_ops import check_tensorrt_coverage, load_matrix, parse_matrix

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper

MATRIX_MD = Path(__file__).resolve().parents[3] / "shared" / "reference" / "third_party" / "onnx-tensorrt-operators.md"


def _spec():
    return PolicySpec(inputs=[TensorSpec("pixel_values", (BATCH, 2, 3, 64, 64)), TensorSpec("state", (BATCH, 8))],
                      outputs=[TensorSpec("actions", (BATCH, 4, 8))],
                      norm={"state_mean": [0.0] * 8, "state_std": [2.0] * 8}, meta={"chunk": 4})


def test_matrix_data_file():
    m = load_matrix()
    assert m["tensorrt_version"] == "10.0" and (m["opset_min"], m["opset_max"]) == (9, 20)
    assert "onnx-tensorrt" in m["source"] and "96e78110" in m["source"]
    assert m["ops"]["MatMul"]["supported"] and not m["ops"]["AffineGrid"]["supported"]
    assert m["ops"]["Resize"]["types"] == ["FP32", "FP16", "BF16"] and "Antialiasing" in m["ops"]["Resize"]["restrictions"]
    assert len(m["ops"]) > 180 and sum(o["supported"] for o in m["ops"].values()) > 140
    assert "BF16" in m["types"]
    if MATRIX_MD.is_file():  # the shipped data is exactly the parse of the reference copy
        assert parse_matrix(MATRIX_MD.read_text()) == m
    with pytest.raises(UserValueError, match="not TensorRT's operator matrix"):
        parse_matrix("# hello")


def _model(nodes, inputs, outputs, inits=(), opset=17, value_info=()):
    g = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits), value_info=list(value_info))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def _f(name, shape=(1, 3, 8, 8), t=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, t, shape)


def test_checker_accepts_supported_graph():
    w = helper.make_tensor("w", TensorProto.FLOAT, [8, 8], np.ones(64, np.float32).tolist())
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [3])
    ax = helper.make_tensor("ax", TensorProto.INT64, [], [3])
    m = _model([helper.make_node("MatMul", ["x", "w"], ["y"]), helper.make_node("Relu", ["y"], ["z"]),
                helper.make_node("CumSum", ["z", "ax"], ["c"]),  # INT64 axis input: not the data type
                helper.make_node("ReduceMean", ["c", "axes"], ["out"], keepdims=1)],
               [_f("x")], [_f("out", (1, 3, 8, 1))], [w, axes, ax], opset=18)
    rep = check_tensorrt_coverage(m)
    assert rep.ok, rep.errors
    assert rep.nodes == 4 and rep.ops == {"MatMul": 1, "Relu": 1, "CumSum": 1, "ReduceMean": 1}


@pytest.mark.parametrize("case,expect", [
    ("cubic", "mode 'cubic'"), ("antialias", "antialias"), ("custom", "domain 'com.microsoft'"),
    ("unsupported", "operator BitShift is unsupported"), ("unlisted", "not listed"),
    ("axes", "axes"), ("opset", "opset 21"), ("type", "type INT8"), ("layernorm", "only the first output"),
    ("subgraph", "(in If.then_branch)"), ("dilations", "dilations"), ("topk", "sorted=0"),
    ("uint8", "UINT8 inside the network"), ("zero_point", "zero point must be 0"),
    ("cumsum_int", "CumSum"),  # position ids as attention_mask.long().cumsum(-1): INT64 CumSum is refused
])
def test_checker_refuses(case, expect):
    x, out = _f("x"), _f("out")
    opset = 17
    inits, nodes, vi = [], [], []
    roi = helper.make_tensor("roi", TensorProto.FLOAT, [0], [])
    scales = helper.make_tensor("scales", TensorProto.FLOAT, [4], [1, 1, 2, 2])
    if case in ("cubic", "antialias"):
        inits = [roi, scales]
        kw = {"mode": "cubic"} if case == "cubic" else {"mode": "linear", "antialias": 1}
        nodes = [helper.make_node("Resize", ["x", "roi", "scales"], ["out"], **kw)]
        opset = 18
    elif case == "custom":
        nodes = [helper.make_node("FusedGemm", ["x", "x"], ["out"], domain="com.microsoft")]
    elif case == "unsupported":
        x, out = _f("x", t=TensorProto.UINT32), _f("out", t=TensorProto.UINT32)
        nodes = [helper.make_node("BitShift", ["x", "x"], ["out"], direction="LEFT")]
    elif case == "unlisted":
        nodes = [helper.make_node("MadeUpOp", ["x"], ["out"])]
    elif case == "axes":  # ReduceSum with axes computed at run time
        nodes = [helper.make_node("Shape", ["x"], ["s"]), helper.make_node("Slice", ["s", "st", "en"], ["ax"]),
                 helper.make_node("ReduceSum", ["x", "ax"], ["out"])]
        inits = [helper.make_tensor("st", TensorProto.INT64, [1], [3]), helper.make_tensor("en", TensorProto.INT64, [1], [4])]
        opset = 18
    elif case == "opset":
        nodes, opset = [helper.make_node("Relu", ["x"], ["out"])], 21
    elif case == "type":
        x, out = _f("x", t=TensorProto.INT8), _f("out", t=TensorProto.INT8)
        nodes = [helper.make_node("Relu", ["x"], ["out"])]
    elif case == "layernorm":
        inits = [helper.make_tensor("g", TensorProto.FLOAT, [8], [1.0] * 8)]
        nodes = [helper.make_node("LayerNormalization", ["x", "g"], ["out", "mean"], axis=-1)]
        vi = [_f("mean", (1, 3, 8, 1))]
        out = [out, _f("mean", (1, 3, 8, 1))]
    elif case == "subgraph":
        then = helper.make_graph([helper.make_node("MadeUpOp", ["x"], ["a"])], "then", [], [_f("a")])
        other = helper.make_graph([helper.make_node("Relu", ["x"], ["b"])], "else", [], [_f("b")])
        nodes = [helper.make_node("If", ["c"], ["out"], then_branch=then, else_branch=other)]
        x = [x, helper.make_tensor_value_info("c", TensorProto.BOOL, [])]
    elif case == "dilations":
        nodes = [helper.make_node("MaxPool", ["x"], ["out"], kernel_shape=[2, 2], dilations=[2, 2])]
    elif case == "topk":
        inits = [helper.make_tensor("k", TensorProto.INT64, [1], [2])]
        nodes = [helper.make_node("TopK", ["x", "k"], ["out", "idx"], sorted=0)]
        out = [out, _f("idx", t=TensorProto.INT64)]
    elif case == "cumsum_int":
        x, out = _f("x", t=TensorProto.INT64), _f("out", t=TensorProto.INT64)
        inits = [helper.make_tensor("ax", TensorProto.INT64, [], [3])]
        nodes = [helper.make_node("CumSum", ["x", "ax"], ["out"])]
    elif case == "uint8":  # uint8 in, cast to uint8 inside, back to float: the middle tensor is refused
        nodes = [helper.make_node("Cast", ["x"], ["u"], to=TensorProto.UINT8),
                 helper.make_node("Cast", ["u"], ["out"], to=TensorProto.FLOAT)]
    elif case == "zero_point":
        inits = [helper.make_tensor("sc", TensorProto.FLOAT, [], [0.1]), helper.make_tensor("zp", TensorProto.INT8, [], [3])]
        nodes = [helper.make_node("QuantizeLinear", ["x", "sc", "zp"], ["q"]),
                 helper.make_node("DequantizeLinear", ["q", "sc", "zp"], ["out"])]
    m = _model(nodes, x if isinstance(x, list) else [x], out if isinstance(out, list) else [out], inits, opset, vi)
    rep = check_tensorrt_coverage(m)
    assert not rep.ok and expect in " | ".join(rep.errors), rep.errors
    assert "refused" in rep.summary()


def test_profiles_and_engine_format():
    spec = _spec()
    prof = profile_shapes(spec, min_batch=1, opt_batch=2, max_batch=8)
    assert prof["pixel_values"] == ((1, 2, 3, 64, 64), (2, 2, 3, 64, 64), (8, 2, 3, 64, 64))
    assert prof["state"] == ((1, 8), (2, 8), (8, 8))
    with pytest.raises(UserValueError, match="min_batch <= opt_batch"):
        profile_shapes(spec, min_batch=4, opt_batch=2, max_batch=8)
    head = engine_header(spec, prof, "bf16", tensorrt_version="10.0.1", opset=20)
    assert head["inputs"] == ["pixel_values", "state"] and head["outputs"] == ["actions"]
    assert head["versions"]["tensorrt"] == "10.0.1" and head["versions"]["onnx_opset"] == 20 and head["versions"]["beingh0"]
    assert head["profile"]["state"] == [[1, 8], [2, 8], [8, 8]] and head["spec"]["norm"]["state_std"] == [2.0] * 8
    blob = pack_engine(b"\x00PLAN\xff" * 10, head)
    assert blob[:8] == MAGIC
    h2, plan = unpack_engine(blob)
    assert plan == b"\x00PLAN\xff" * 10 and h2 == json.loads(json.dumps(head))
    assert PolicySpec.from_dict(h2["spec"]).to_dict() == spec.to_dict()
    for bad, msg in [(b"GGUF" + blob[4:], "bad magic"), (blob[:20], "truncated"), (MAGIC + b"\x05\x00\x00\x00{{{{{", "corrupt")]:
        with pytest.raises(UserValueError, match=msg):
            unpack_engine(bad)


def test_build_engine_or_clear_skip(tmp_path):
    try:
        require_tensorrt()
    except TensorRTUnavailable as e:
        assert "TensorRT is not available here" in str(e) and "\n" not in str(e)
        pytest.skip(f"tensorrt does not import here: {e}")
    import torch

    if not torch.cuda.is_available():
        pytest.skip("TensorRT needs CUDA")
    from beingh0.deploy.export import export_onnx
    from beingh0.deploy.runtime import PolicyRuntime
    from beingh0.deploy.standin import standin_policy
    from beingh0.deploy.tensorrt import build_engine

    module, spec = standin_policy("tiny")
    export_onnx(module, spec, tmp_path / "t.onnx", max_batch=4)
    head = build_engine(tmp_path / "t.onnx", tmp_path / "t.engine", precision="fp16", max_batch=4,
                        timing_cache=tmp_path / "cache.bin")
    assert (tmp_path / "cache.bin").stat().st_size > 0 and head["precision"] == "fp16"
    trt_rt = PolicyRuntime.create("tensorrt", engine_path=tmp_path / "t.engine", device="cuda")
    eager = PolicyRuntime.create("eager", module=module, spec=spec)
    img = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    np.testing.assert_allclose(trt_rt.predict(img, np.ones(8)), eager.predict(img, np.ones(8)), atol=2e-2, rtol=2e-2)


class _FakeTRT:
    """Records the calls build_engine makes against the tensorrt API (a stand-in module: the real one
    cannot be installed here); the real build is test_build_engine_or_clear_skip."""

    __version__ = "10.0.0-fake"

    def __init__(self, calls):
        import types

        c = calls
        self.Logger = type("Logger", (), {"WARNING": 2, "__init__": lambda s, lvl: c.append(("logger", lvl))})
        self.MemoryPoolType = types.SimpleNamespace(WORKSPACE="ws")
        self.BuilderFlag = types.SimpleNamespace(FP16="fp16", BF16="bf16")

        class Profile:
            def set_shape(s, name, lo, opt, hi):
                c.append(("shape", name, tuple(lo), tuple(opt), tuple(hi)))

        class Cache:
            def __init__(s, data):
                s.data = data

            def serialize(s):
                return b"CACHE" + s.data

        class Config:
            def set_memory_pool_limit(s, pool, n):
                c.append(("pool", pool, n))

            def set_flag(s, f):
                c.append(("flag", f))

            def create_timing_cache(s, data):
                c.append(("cache_in", bytes(data)))
                s.cache = Cache(bytes(data))
                return s.cache

            def set_timing_cache(s, cache, ignore_mismatch):
                c.append(("cache_set", ignore_mismatch))

            def get_timing_cache(s):
                return s.cache

            def add_optimization_profile(s, p):
                c.append(("profile",))

        class Builder:
            def __init__(s, logger):
                pass

            def create_network(s, flags):
                c.append(("network", flags))
                return "net"

            def create_builder_config(s):
                return Config()

            def create_optimization_profile(s):
                return Profile()

            def build_serialized_network(s, net, cfg):
                c.append(("build",))
                return memoryview(b"PLANBYTES")

        class Parser:
            num_errors = 0

            def __init__(s, net, logger):
                pass

            def parse_from_file(s, path):
                c.append(("parse", Path(path).name))
                return True

        self.Builder, self.OnnxParser = Builder, Parser


def test_build_engine_calls_the_api(monkeypatch, tmp_path):
    """The build path against a recording stand-in of the tensorrt module: profile shapes, flags,
    timing cache in and out, and the engine file with its header."""
    import sys

    from beingh0.deploy import tensorrt as trt_mod
    from beingh0.deploy.spec import SPEC_KEY

    spec = _spec()
    m = _model([helper.make_node("Relu", ["x"], ["out"])], [_f("x")], [_f("out")], opset=20)
    e = m.metadata_props.add()
    e.key, e.value = SPEC_KEY, spec.to_json()
    onnx.save(m, str(tmp_path / "p.onnx"))
    (tmp_path / "cache.bin").write_bytes(b"OLD")
    calls = []
    monkeypatch.setitem(sys.modules, "tensorrt", _FakeTRT(calls))
    head = trt_mod.build_engine(tmp_path / "p.onnx", tmp_path / "p.engine", precision="bf16", min_batch=1, opt_batch=2,
                                max_batch=4, timing_cache=tmp_path / "cache.bin", workspace_gib=1)
    assert ("flag", "bf16") in calls and ("pool", "ws", 2**30) in calls and ("network", 0) in calls
    assert ("shape", "pixel_values", (1, 2, 3, 64, 64), (2, 2, 3, 64, 64), (4, 2, 3, 64, 64)) in calls
    assert ("shape", "state", (1, 8), (2, 8), (4, 8)) in calls and ("cache_in", b"OLD") in calls
    assert calls.index(("parse", "p.onnx")) < calls.index(("build",))
    assert (tmp_path / "cache.bin").read_bytes() == b"CACHEOLD"
    h, plan = unpack_engine((tmp_path / "p.engine").read_bytes())
    assert plan == b"PLANBYTES" and h == json.loads(json.dumps(head)) and h["precision"] == "bf16"
    assert h["versions"]["tensorrt"] == "10.0.0-fake" and h["versions"]["onnx_opset"] == 20
    with pytest.raises(UserValueError, match="precision"):
        trt_mod.build_engine(tmp_path / "p.onnx", tmp_path / "q.engine", precision="int8")
