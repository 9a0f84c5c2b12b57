"""Dynamic tiling: InternVL's grid choice, and every tile equal to a float64 resize + crop + normalise."""
import numpy as np
import pytest
import torch

from beingh0.core.errors import UserValueError
from beingh0.ops.warp import IMAGENET_MEAN, IMAGENET_STD
from beingh0.vla.tiling import tile_grid, tile_image, tile_matrices


def internvl_grid(width, height, tile, min_num=1, max_num=12):
    """InternVL3's model-card ``dynamic_preprocess`` grid choice, transcribed literally."""
    aspect = width / height
    ratios = sorted({(i, j) for n in range(min_num, max_num + 1) for i in range(1, n + 1) for j in range(1, n + 1)
                     if min_num <= i * j <= max_num}, key=lambda x: x[0] * x[1])
    best_diff, best = float("inf"), (1, 1)
    for r in ratios:
        diff = abs(aspect - r[0] / r[1])
        if diff < best_diff:
            best_diff, best = diff, r
        elif diff == best_diff and width * height > 0.5 * tile * tile * r[0] * r[1]:
            best = r
    return best


def test_grid_known_cases():
    assert tile_grid(1920, 1080, 448) == (4, 2)  # 8 tiles + thumbnail
    assert tile_grid(448, 448, 448) == (1, 1)
    assert tile_grid(2000, 2000, 448) == (3, 3)  # equal aspect: the larger grid while the image is big enough
    assert tile_grid(100, 400, 448) == (1, 4)
    assert tile_grid(1920, 1080, 448, max_tiles=1) == (1, 1)


def test_grid_matches_internvl_on_random_sizes():
    rng = np.random.default_rng(0)
    for w, h in rng.integers(16, 4000, size=(300, 2)):
        for mx in (1, 4, 6, 12):
            assert tile_grid(int(w), int(h), 448, max_tiles=mx) == internvl_grid(int(w), int(h), 448, max_num=mx), (w, h, mx)


def _bilinear_f64(img: np.ndarray, out_w: int, out_h: int) -> np.ndarray:
    """float64 resize (pixel centres at integers, as cv2.resize) with taps outside the image reading 0."""
    H, W, C = img.shape
    sx = (np.arange(out_w) + 0.5) * W / out_w - 0.5
    sy = (np.arange(out_h) + 0.5) * H / out_h - 0.5
    x0, y0 = np.floor(sx).astype(int), np.floor(sy).astype(int)
    fx, fy = sx - x0, sy - y0
    pad = np.zeros((H + 4, W + 4, C))
    pad[2:-2, 2:-2] = img
    tap = lambda yy, xx: pad[np.clip(yy, -2, H + 1)[:, None] + 2, np.clip(xx, -2, W + 1)[None, :] + 2]
    return ((1 - fy)[:, None, None] * ((1 - fx)[None, :, None] * tap(y0, x0) + fx[None, :, None] * tap(y0, x0 + 1))
            + fy[:, None, None] * ((1 - fx)[None, :, None] * tap(y0 + 1, x0) + fx[None, :, None] * tap(y0 + 1, x0 + 1)))


def _normalise(x):
    return (x / 255.0 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)


def reference_tiles(img: np.ndarray, tile: int, max_tiles: int, thumbnail: bool) -> np.ndarray:
    H, W = img.shape[:2]
    c, r = internvl_grid(W, H, tile, max_num=max_tiles)
    canvas = _bilinear_f64(img.astype(np.float64), c * tile, r * tile)
    tiles = [canvas[i * tile:(i + 1) * tile, j * tile:(j + 1) * tile] for i in range(r) for j in range(c)]
    if thumbnail and len(tiles) > 1:
        tiles.append(_bilinear_f64(img.astype(np.float64), tile, tile))
    return np.stack([_normalise(t).transpose(2, 0, 1) for t in tiles])


@pytest.mark.parametrize("hw,max_tiles", [((61, 150), 6), ((300, 170), 12), ((40, 40), 4), ((23, 97), 12)])
@pytest.mark.parametrize("backend", ["cpp", "reference"])
def test_tiles_match_float64_resize_and_crop(hw, max_tiles, backend):
    rng = np.random.default_rng(hw[0])
    img = rng.integers(0, 256, size=(*hw, 3), dtype=np.uint8)
    tile = 32
    got = tile_image(img, tile, max_tiles, thumbnail=True, backend=backend).double().numpy()
    want = reference_tiles(img, tile, max_tiles, thumbnail=True)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=2e-4 if backend == "cpp" else 1e-6, rtol=0)


def test_no_thumbnail_for_one_tile_or_when_off():
    assert tile_image(np.full((40, 40, 3), 128, np.uint8), 32, 12).shape == (1, 3, 32, 32)
    assert tile_image(np.full((50, 50, 3), 128, np.uint8), 32, 12).shape == (5, 3, 32, 32)  # 2 x 2 + thumbnail
    wide = np.full((32, 100, 3), 128, np.uint8)
    n = tile_grid(100, 32, 32)[0] * tile_grid(100, 32, 32)[1]
    assert tile_image(wide, 32, 12).shape[0] == n + 1
    assert tile_image(wide, 32, 12, thumbnail=False).shape[0] == n


def test_pre_affine_folds_into_the_same_pass():
    """Tiling an aligned canvas in one pass equals warping to the canvas first (float64 reference)."""
    rng = np.random.default_rng(3)
    img = torch.from_numpy(rng.integers(0, 256, size=(90, 120, 3), dtype=np.uint8))
    pre = torch.tensor([[0.8, 0.0, 10.0], [0.0, 0.8, -4.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    canvas_wh = (96, 64)
    got = tile_image(img, 32, 6, pre=pre, canvas_wh=canvas_wh, backend="reference", out_dtype=torch.float64)
    mats = tile_matrices(96, 64, tile_grid(96, 64, 32, max_tiles=6), 32, True)
    composed = mats @ pre
    assert got.shape[0] == mats.shape[0]
    # direct: the sample point of tile pixel (x, y) is inverse(composed) @ (x, y, 1) on the original image
    from beingh0.ops.warp import warp_align

    for k in range(mats.shape[0]):
        want = warp_align(img[None], composed[k], (32, 32), backend="reference", out_dtype=torch.float64).image[0]
        torch.testing.assert_close(got[k], want, rtol=0, atol=1e-12)


def test_bad_inputs_are_user_errors():
    with pytest.raises(UserValueError, match="uint8 RGB"):
        tile_image(np.zeros((10, 10), np.uint8), 32)
    with pytest.raises(UserValueError, match="both pre"):
        tile_image(np.zeros((10, 10, 3), np.uint8), 32, pre=torch.eye(3))
