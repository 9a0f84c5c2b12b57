"""PolicyRuntime's pre/post-processing without a model: tiles (grid and per-camera matrices), state
normalisation, action de-normalisation, several cameras."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from beingh0.core.errors import UserValueError
from beingh0.deploy.runtime import PolicyRuntime
from beingh0.deploy.spec import BATCH, PolicySpec, TensorSpec
from beingh0.vla.tiling import tile_grid, tile_image, tile_matrices


def _spec(cameras=None, tiles=1):
    meta = {"tile": 16, "grid": [1, 1], "thumbnail": False, "chunk": 2}
    if cameras:
        meta["cameras"] = cameras
    return PolicySpec(inputs=[TensorSpec("pixel_values", (BATCH, tiles, 3, 16, 16)), TensorSpec("state", (BATCH, 3))],
                      outputs=[TensorSpec("actions", (BATCH, 2, 3))],
                      norm={"state_mean": [1.0, 2.0, 3.0], "state_std": [2.0, 2.0, 2.0],
                            "action_mean": [10.0, 0.0, 0.0], "action_std": [1.0, 1.0, 5.0]}, meta=meta)


def _echo_runtime(spec):
    seen = {}

    def run(inputs):  # actions = normalised state repeated: shows what the core received
        seen.update(inputs)
        return inputs["state"][:, None, :].expand(-1, 2, -1).clone()

    return PolicyRuntime(spec, "eager", run), seen


def test_normalisation_and_grid_tiles():
    rt, seen = _echo_runtime(_spec())
    img = np.random.default_rng(0).integers(0, 255, (30, 40, 3), dtype=np.uint8)
    a = rt.predict(img, np.array([3.0, 2.0, 1.0]))
    np.testing.assert_allclose(seen["state"][0].numpy(), [1.0, 0.0, -1.0])
    np.testing.assert_allclose(a, [[11.0, 0.0, -5.0]] * 2)
    ref = tile_image(img, 16, max_tiles=1, thumbnail=False)
    assert seen["pixel_values"].shape == (1, 1, 3, 16, 16)
    torch.testing.assert_close(seen["pixel_values"][0], ref)


def test_camera_matrices_and_several_cameras():
    W, H = 48, 32
    grid = tile_grid(W, H, 16, 1, 2)
    cams = [{"name": c, "width": W, "height": H, "matrices": tile_matrices(W, H, grid, 16, True).tolist()}
            for c in ("left", "right")]
    n = len(cams[0]["matrices"])
    rt, seen = _echo_runtime(_spec(cams, tiles=2 * n))
    rng = np.random.default_rng(1)
    imgs = {c: rng.integers(0, 255, (2, H, W, 3), dtype=np.uint8) for c in ("left", "right")}
    out = rt.predict(imgs, np.zeros((2, 3)))
    assert out.shape == (2, 2, 3) and seen["pixel_values"].shape == (2, 2 * n, 3, 16, 16)
    ref = tile_image(imgs["right"][1], 16, max_tiles=2, thumbnail=True)
    torch.testing.assert_close(seen["pixel_values"][1, n:], ref)
    with pytest.raises(UserValueError, match="takes 48x32 images"):
        rt.predict({"left": imgs["left"][0], "right": imgs["right"][0][:16]}, np.zeros(3))
    with pytest.raises(UserValueError, match="missing"):
        rt.predict({"left": imgs["left"][0]}, np.zeros(3))
    with pytest.raises(UserValueError, match="takes 2 cameras"):
        rt.predict(imgs["left"][0], np.zeros(3))
