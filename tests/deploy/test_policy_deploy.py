"""The trained-policy path: a (random) tiny ``BeingH0Policy`` through the deploy adapter -- the
runtime's preprocessing gives exactly ``predict_action_chunk``'s chunk -- and its graph against
TensorRT's operator matrix."""
from __future__ import annotations

import numpy as np
import pytest

from .conftest import CAM, DIM, H, W


def _obs(seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 255, (H, W, 3), dtype=np.uint8), rng.normal(size=DIM).astype(np.float32)


def test_runtime_equals_predict_action_chunk(tiny_policy, tiny_export):
    from beingh0.deploy.runtime import PolicyRuntime

    core, spec, path, _ = tiny_export
    assert spec.norm == {} and spec.meta["cameras"][0]["name"] == CAM and spec.outputs[0].shape[1:] == (8, DIM)
    rts = [PolicyRuntime.create("eager", module=core, spec=spec), PolicyRuntime.create("onnxruntime", onnx_path=path)]
    for seed in (0, 1):
        img, st = _obs(seed)
        ref = tiny_policy.predict_action_chunk({"observation.state": st, f"observation.images.{CAM}": img}).numpy()
        np.testing.assert_allclose(rts[0].predict(img, st), ref, atol=1e-6)
        np.testing.assert_allclose(rts[1].predict(img, st), ref, atol=1e-4, rtol=1e-3)


def test_adapter_needs_image_sizes(tiny_policy):
    from beingh0.core.errors import UserValueError
    from beingh0.deploy.policy_adapter import deployable_from_policy

    with pytest.raises(UserValueError, match="image size of cameras"):
        deployable_from_policy(tiny_policy)


def test_policy_tensorrt_coverage(tiny_export):
    cov = tiny_export[3].coverage
    assert cov.ok, cov.summary()
