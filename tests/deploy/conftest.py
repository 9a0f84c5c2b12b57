"""Fixtures of the deploy tests: a fast fake runtime (server, control loop) and, once per session,
a tiny ``BeingH0Policy`` (random weights) exported to ONNX through the deploy adapter (seconds)."""
from __future__ import annotations

import time

import numpy as np
import pytest

from beingh0.deploy.spec import BATCH, PolicySpec, TensorSpec


class FakeRuntime:
    """A PolicyRuntime look-alike: actions = state mean + image mean, after ``delay_s``."""

    backend = "fake"
    describe = "fake runtime (tests)"

    def __init__(self, state_dim=4, chunk=3, action_dim=4, delay_s=0.0):
        self.spec = PolicySpec(
            inputs=[TensorSpec("pixel_values", (BATCH, 1, 3, 8, 8)), TensorSpec("state", (BATCH, state_dim))],
            outputs=[TensorSpec("actions", (BATCH, chunk, action_dim))], meta={"tile": 8, "chunk": chunk})
        self.delay_s, self.calls, self.batches = delay_s, 0, []

    def predict(self, image, state, input_ids=None):
        if self.delay_s:
            time.sleep(self.delay_s)
        if isinstance(image, dict):  # several cameras: their mean image
            image = np.mean([np.asarray(v, np.float32) for _, v in sorted(image.items())], axis=0)
        image, state = np.asarray(image), np.asarray(state, np.float32)
        single = state.ndim == 1
        img = image[None] if single else image
        st = state[None] if single else state
        self.calls += 1
        self.batches.append(len(st))
        chunk, ad = self.spec.outputs[0].shape[1:]
        out = np.zeros((len(st), chunk, ad), np.float32)
        out += st.mean(axis=1)[:, None, None] + img.reshape(len(st), -1).mean(axis=1)[:, None, None] / 255.0
        return out[0] if single else out


@pytest.fixture
def fake_runtime():
    return FakeRuntime()


#: The tiny policy of the export tests: camera, its image size, state/action dimension, chunk.
CAM, W, H, DIM, CHUNK = "cam_high", 160, 120, 6, 8


@pytest.fixture(scope="session")
def tiny_policy():
    """A randomly initialised tiny ``BeingH0Policy`` (statistics of random data), eval mode."""
    from beingh0.policy import BeingH0Policy, PolicyConfig, PolicySpec
    from beingh0.vla import VLA

    rng = np.random.default_rng(0)
    cfg = PolicyConfig(chunk=CHUNK, num_queries=CHUNK)
    spec = PolicySpec.from_tables(rng.normal(size=(64, DIM)), rng.normal(size=(64, DIM)), (CAM,), cfg)
    return BeingH0Policy(VLA.from_preset("tiny", seed=0), cfg, spec, seed=0).eval()


@pytest.fixture(scope="session")
def tiny_export(tiny_policy, tmp_path_factory):
    """(core, spec, onnx path, ExportReport) of the tiny policy through the deploy adapter, exported once.

    Exported as ``beingh0 export`` does: a graph TensorRT would refuse fails here."""
    pytest.importorskip("onnxscript")
    pytest.importorskip("onnxruntime")
    from beingh0.deploy.export import export_onnx
    from beingh0.deploy.policy_adapter import deployable_from_policy

    module, spec = deployable_from_policy(tiny_policy, image_sizes={CAM: (W, H)})
    path = tmp_path_factory.mktemp("onnx") / "tiny_policy.onnx"
    rep = export_onnx(module, spec, path, max_batch=8)
    return module, spec, path, rep
