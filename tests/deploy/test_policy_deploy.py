"""The trained-policy path: a (random) tiny ``BeingH0Policy`` through the deploy adapter, runtime and
ONNX export -- the runtime's preprocessing gives exactly ``predict_action_chunk``'s chunk."""
from __future__ import annotations

import numpy as np
import pytest

policy_mod = pytest.importorskip("beingh0.policy")

STATE, CAM, W, H = 6, "cam_high", 160, 120


@pytest.fixture(scope="module")
def tiny_policy():
    from beingh0.policy import BeingH0Policy, PolicyConfig, PolicySpec

    from beingh0.vla import VLA

    rng = np.random.default_rng(0)
    cfg = PolicyConfig(chunk=8, num_queries=8)
    spec = PolicySpec.from_tables(rng.normal(size=(64, STATE)), rng.normal(size=(64, STATE)), (CAM,), cfg)
    return BeingH0Policy(VLA.from_preset("tiny", seed=0), cfg, spec, seed=0).eval()


@pytest.fixture(scope="module")
def deployed(tiny_policy):
    from beingh0.deploy.policy_adapter import deployable_from_policy

    return deployable_from_policy(tiny_policy, image_sizes={CAM: (W, H)})


def _obs(seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 255, (H, W, 3), dtype=np.uint8), rng.normal(size=STATE).astype(np.float32)


def test_runtime_equals_predict_action_chunk(tiny_policy, deployed):
    from beingh0.deploy.runtime import PolicyRuntime

    core, spec = deployed
    assert spec.norm == {} and spec.meta["cameras"][0]["name"] == CAM and spec.outputs[0].shape[1:] == (8, STATE)
    rt = PolicyRuntime.create("eager", module=core, spec=spec)
    for seed in (0, 1):
        img, st = _obs(seed)
        ref = tiny_policy.predict_action_chunk({"observation.state": st, f"observation.images.{CAM}": img}).numpy()
        np.testing.assert_allclose(rt.predict(img, st), ref, atol=1e-6)


def test_policy_exports_and_ort_matches(deployed, tmp_path):
    from beingh0.deploy.export import export_onnx
    from beingh0.deploy.runtime import PolicyRuntime

    core, spec = deployed
    rep = export_onnx(core, spec, tmp_path / "policy.onnx", max_batch=4, allow_tensorrt_refusals=True)
    assert rep.ort_ok and rep.ort_max_abs_err < 1e-4
    rt_ort = PolicyRuntime.create("onnxruntime", onnx_path=tmp_path / "policy.onnx")
    rt_eager = PolicyRuntime.create("eager", module=core, spec=spec)
    imgs, sts = zip(*(_obs(s) for s in (2, 3)))
    np.testing.assert_allclose(rt_ort.predict(np.stack(imgs), np.stack(sts)),
                               rt_eager.predict(np.stack(imgs), np.stack(sts)), atol=1e-4, rtol=1e-3)
    # TensorRT coverage of the policy graph: see test_policy_tensorrt_coverage
    test_policy_exports_and_ort_matches.coverage = rep.coverage


@pytest.mark.xfail(strict=False, reason="BeingH0Policy.forward_normalized uses masked_scatter (-> NonZero on BOOL) and "
                                        "an INT64 cumsum/clamp for position ids, which TensorRT 10.0's matrix refuses; "
                                        "float cumsum + gather + where give the same numbers (docs/deploy.md)")
def test_policy_tensorrt_coverage(deployed):
    cov = getattr(test_policy_exports_and_ort_matches, "coverage", None)
    if cov is None:
        pytest.skip("needs test_policy_exports_and_ort_matches (same module) to have exported")
    assert cov.ok, cov.summary()
