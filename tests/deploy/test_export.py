"""ONNX export of the tiny policy (vision tower + projector + LLM prefill + proprio/queries + head,
through the deploy adapter), ORT parity, the spec in the file, and the runtimes agreeing."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from beingh0.core.errors import UserValueError
from beingh0.deploy.export import ORT_ATOL, example_inputs, read_onnx_spec, verify_onnx
from beingh0.deploy.runtime import PolicyRuntime, available_backends

from .conftest import CHUNK, DIM, H, W


def test_export_matches_pytorch_with_dynamic_batch(tiny_export):
    module, spec, path, rep = tiny_export
    import onnx
    import onnxruntime as ort

    assert rep.ort_ok and rep.ort_max_abs_err < ORT_ATOL and rep.ort_batches == [1, 3]
    assert rep.coverage.nodes == rep.nodes > 100  # its verdict: test_policy_deploy.py
    # the whole forward is in the graph: the ViT's patch Conv, the projector's Gelu, the LLM's attention
    assert {"Conv", "Gelu", "Softmax", "LayerNormalization", "MatMul"} <= set(rep.coverage.ops)
    m = onnx.load(str(path))
    dims = [[d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in m.graph.input]
    assert [i.name for i in m.graph.input] == spec.input_names and all(d[0] == "batch" for d in dims)
    assert dims[0][1:] == list(spec.inputs[0].shape[1:])
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ex = example_inputs(spec, 5, seed=7)  # a batch size the export never saw
    got = sess.run(None, {k: v.numpy() for k, v in ex.items()})[0]
    with torch.no_grad():
        ref = module(*ex.values()).double().numpy()
    assert got.shape == (5, CHUNK, DIM)
    np.testing.assert_allclose(got, ref, atol=ORT_ATOL, rtol=1e-3)
    # per-sample independence: sample 2 alone gives the same chunk as inside the batch
    one = sess.run(None, {k: v[2:3].numpy() for k, v in ex.items()})[0]
    np.testing.assert_allclose(one[0], got[2], atol=1e-5)
    assert "TensorRT 10.0 coverage" in rep.summary() and "ONNX Runtime vs PyTorch" in rep.summary()


def test_spec_travels_in_the_file(tiny_export, tmp_path):
    _, spec, path, _ = tiny_export
    back = read_onnx_spec(path)
    assert back.to_dict() == spec.to_dict()
    import onnx

    m = onnx.load(str(path))
    del m.metadata_props[:]
    onnx.save(m, str(tmp_path / "bare.onnx"))
    with pytest.raises(UserValueError, match="no beingh0 policy spec"):
        read_onnx_spec(tmp_path / "bare.onnx")


class _Shifted(torch.nn.Module):
    """The module with 0.5 added to its output: the file no longer matches it."""

    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, *a):
        return self.m(*a) + 0.5


def test_verify_detects_a_wrong_export(tiny_export):
    module, spec, path, _ = tiny_export
    err, ok = verify_onnx(path, _Shifted(module), spec, batches=(1,))
    assert not ok and err > 0.4


def test_runtimes_agree(tiny_export):
    module, spec, path, _ = tiny_export
    avail = available_backends("cpu")
    rts = [PolicyRuntime.create("eager", module=module, spec=spec),
           PolicyRuntime.create("compiled", module=module, spec=spec, compile_backend="aot_eager")]
    if avail["onnxruntime"] is None:
        rts.append(PolicyRuntime.create("onnxruntime", onnx_path=path))
    if avail["tensorrt"] is None:  # on a robot PC with TensorRT only
        pytest.skip("TensorRT agreement runs in tests/deploy/test_tensorrt.py")
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (H, W, 3), dtype=np.uint8)
    st = rng.normal(size=DIM).astype(np.float32)
    outs = {rt.backend: rt.predict(img, st) for rt in rts}
    ref = outs["eager"]
    assert ref.shape == (CHUNK, DIM)
    for name, out in outs.items():
        np.testing.assert_allclose(out, ref, atol=1e-4, rtol=1e-3, err_msg=name)
    # batched predict == per-sample predict (compiled: dynamic=False would recompile per batch size)
    imgs = np.stack([img, img[::-1].copy()])
    sts = np.stack([st, -st])
    for rt in (r for r in rts if r.backend != "compiled"):
        b = rt.predict(imgs, sts)
        np.testing.assert_allclose(b[0], ref, atol=1e-4, rtol=1e-3)
        np.testing.assert_allclose(b[1], rt.predict(imgs[1], sts[1]), atol=1e-4, rtol=1e-3)
    assert set(rts[0].timings) == {"preprocess_ms", "infer_ms", "total_ms"}


def test_runtime_bad_inputs(tiny_export):
    module, spec, _, _ = tiny_export
    rt = PolicyRuntime.create("eager", module=module, spec=spec)
    img = np.zeros((H, W, 3), np.uint8)
    with pytest.raises(UserValueError, match="image must be uint8"):
        rt.predict(img.astype(np.float32), np.zeros(DIM))
    with pytest.raises(UserValueError, match="state must be"):
        rt.predict(img, np.zeros(DIM + 1))
    with pytest.raises(UserValueError, match="NaN"):
        rt.predict(img, np.full(DIM, np.nan))
    with pytest.raises(UserValueError, match="takes 160x120 images"):
        rt.predict(np.zeros((32, 32, 3), np.uint8), np.zeros(DIM))
    with pytest.raises(UserValueError, match="unknown runtime"):
        PolicyRuntime.create("tflite", module=module, spec=spec)
    with pytest.raises(UserValueError, match="needs an exported"):
        PolicyRuntime.create("onnxruntime")


class _MaskedScatterCore(torch.nn.Module):
    """InternVL's way of placing image features (masked_scatter): exports to NonZero on a BOOL tensor,
    which TensorRT 10.0's matrix refuses (NonZero: FP32, FP16)."""

    def forward(self, input_ids, feats):
        emb = torch.zeros(input_ids.shape[0], input_ids.shape[1], 4) + input_ids[..., None]
        mask = (input_ids == 5).unsqueeze(-1).expand_as(emb)
        return emb.masked_scatter(mask, feats.reshape(-1, 4))


def test_export_refuses_what_tensorrt_would(tmp_path):
    from beingh0.deploy.export import export_onnx
    from beingh0.deploy.spec import BATCH, PolicySpec, TensorSpec

    spec = PolicySpec(inputs=[TensorSpec("input_ids", (BATCH, 4), "int64"), TensorSpec("feats", (BATCH, 2, 4))],
                      outputs=[TensorSpec("out", (BATCH, 4, 4))], meta={"prompt_ids": [1, 5, 5, 2]})
    rep = export_onnx(_MaskedScatterCore(), spec, tmp_path / "m.onnx", max_batch=4, allow_tensorrt_refusals=True)
    assert not rep.coverage.ok and rep.ort_ok and (tmp_path / "m.onnx").is_file()
    with pytest.raises(UserValueError, match="TensorRT would refuse this graph.*NonZero"):
        rep.raise_for_problems()  # what export_onnx does without allow_tensorrt_refusals
