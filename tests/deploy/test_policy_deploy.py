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


def test_state_history_travels_through_export_and_runtime(tiny_policy, tiny_export):
    """The policy's state history (B, H, S) is an input of the exported graph; a plain state stands for a
    robot at rest (the policy's own rule), a real history changes the chunk, ORT agrees with eager."""
    from beingh0.deploy.runtime import PolicyRuntime

    core, spec, path, _ = tiny_export
    H = tiny_policy.config.state_history
    assert H > 1 and spec.input("state").shape == ("batch", H, DIM) and spec.meta["state_history"] == H
    eager, ort = PolicyRuntime.create("eager", module=core, spec=spec), PolicyRuntime.create("onnxruntime", onnx_path=path)
    img, st = _obs(3)
    hist = np.stack([st - 0.3 * (H - 1 - k) for k in range(H)]).astype(np.float32)  # moving, oldest first
    rest = np.repeat(st[None], H, 0)
    np.testing.assert_allclose(eager.predict(img, st), eager.predict(img, rest), atol=1e-6)
    moving = eager.predict(img, hist)
    assert moving.shape == (8, DIM) and np.abs(moving - eager.predict(img, rest)).max() > 1e-4
    np.testing.assert_allclose(ort.predict(img, hist), moving, atol=1e-4, rtol=1e-3)
    batch = eager.predict(np.stack([img, img]), np.stack([hist, rest]))
    np.testing.assert_allclose(batch[0], moving, atol=1e-5)
    ref = tiny_policy.predict_action_chunk({"observation.state": hist[None], f"observation.images.{CAM}": img[None]})
    np.testing.assert_allclose(moving, np.asarray(ref).reshape(moving.shape), atol=1e-5)
    from beingh0.core.errors import UserValueError

    with pytest.raises(UserValueError, match="history"):
        eager.predict(img, np.zeros((H + 1, 2, DIM), np.float32))


def test_adapter_needs_image_sizes(tiny_policy):
    from beingh0.core.errors import UserValueError
    from beingh0.deploy.policy_adapter import deployable_from_policy

    with pytest.raises(UserValueError, match="image size of cameras"):
        deployable_from_policy(tiny_policy)


def test_policy_tensorrt_coverage(tiny_export):
    cov = tiny_export[3].coverage
    assert cov.ok, cov.summary()
