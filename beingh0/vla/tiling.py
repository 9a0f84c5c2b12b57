"""InternVL dynamic tiling, where every tile is one ``warp_align`` pass from the true image.

InternVL3 resizes an image to a grid of ``cols x rows`` square tiles (the grid with 1..12 tiles
whose aspect ratio is closest to the image's), cuts the tiles row-major and, when there is more
than one, appends a thumbnail of the whole image (reference notes, section F). Here each tile's
resize, crop and ImageNet normalisation is a single affine resample of the *original* image by
:func:`beingh0.ops.warp_align`, so nothing is resized twice and an alignment to a virtual camera
(``pre``, e.g. ``AlignTransform``'s ``dst_from_src``) folds into the same pass.

Differences from InternVL's PIL path, by design of the op: bilinear sampling without an
anti-aliasing prefilter (PIL: bicubic, antialiased), and taps beyond the image edge read the fill
colour (black) rather than repeating the edge, which touches the outermost half output pixel per
unit of upscaling.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..core.errors import UserValueError
from ..ops.warp import IMAGENET_MEAN, IMAGENET_STD, resize_matrix, warp_align

__all__ = ["tile_grid", "tile_matrices", "tile_image"]


def tile_grid(width: float, height: float, tile: int, min_tiles: int = 1, max_tiles: int = 12) -> tuple[int, int]:
    """(cols, rows) of InternVL's dynamic tiling for a ``width x height`` image.

    Candidates are all grids with ``min_tiles <= cols * rows <= max_tiles``, visited by increasing
    tile count; the closest aspect ratio wins, and among grids of equal aspect ratio a larger one
    replaces a smaller one when the image has more than half the grid's pixel area.
    """
    if not (width > 0 and height > 0):
        raise UserValueError(f"image size must be positive, got {width}x{height}")
    if not (1 <= min_tiles <= max_tiles):
        raise UserValueError(f"need 1 <= min_tiles <= max_tiles, got {min_tiles}, {max_tiles}")
    aspect = width / height
    grids = sorted({(c, r) for c in range(1, max_tiles + 1) for r in range(1, max_tiles + 1)
                    if min_tiles <= c * r <= max_tiles}, key=lambda g: (g[0] * g[1], g[0]))
    best, best_diff = grids[0], math.inf
    for c, r in grids:
        diff = abs(aspect - c / r)
        if diff < best_diff:
            best, best_diff = (c, r), diff
        elif diff == best_diff and width * height > 0.5 * tile * tile * c * r:
            best = (c, r)
    return best


def tile_matrices(width: float, height: float, grid: tuple[int, int], tile: int, thumbnail: bool,
                  pre: torch.Tensor | None = None) -> torch.Tensor:
    """(n, 3, 3) float64 ``dst_from_src`` of every tile (row-major, then the thumbnail when
    ``thumbnail`` and more than one tile): source pixel -> tile pixel.

    ``width x height`` is the canvas being tiled; ``pre`` (3, 3) maps source pixels to canvas pixels
    (None: the canvas is the source image).
    """
    cols, rows = grid
    to_grid = resize_matrix((width, height), (cols * tile, rows * tile))
    mats = []
    for r in range(rows):
        for c in range(cols):
            shift = torch.eye(3, dtype=torch.float64)
            shift[0, 2], shift[1, 2] = -c * tile, -r * tile
            mats.append(shift @ to_grid)
    if thumbnail and cols * rows > 1:
        mats.append(resize_matrix((width, height), (tile, tile)))
    m = torch.stack(mats)
    if pre is not None:
        m = m @ torch.as_tensor(pre, dtype=torch.float64)
    return m


def _as_image(image) -> torch.Tensor:
    if isinstance(image, np.ndarray):
        image = torch.from_numpy(np.ascontiguousarray(image))
    if not isinstance(image, torch.Tensor):
        raise UserValueError(f"image must be a uint8 (H, W, 3) array or tensor, got {type(image).__name__}")
    if image.dim() != 3 or image.shape[-1] != 3 or image.dtype != torch.uint8:
        raise UserValueError(f"image must be uint8 RGB (H, W, 3), channels last, got {tuple(image.shape)} {image.dtype}")
    return image


def tile_image(image, tile: int, max_tiles: int = 12, min_tiles: int = 1, thumbnail: bool = True, *,
               pre=None, canvas_wh: tuple[float, float] | None = None, out_dtype=torch.float32,
               mean=IMAGENET_MEAN, std=IMAGENET_STD, backend=None) -> torch.Tensor:
    """Tiles of one image: (n, 3, tile, tile) normalised ``out_dtype``.

    Args:
        image: uint8 (H, W, 3) RGB, numpy or torch (CPU or CUDA), as recorded.
        tile: tile side in pixels (the vision tower's image size; 448 for InternVL3).
        max_tiles, min_tiles, thumbnail: InternVL's dynamic tiling (:func:`tile_grid`).
        pre: optional (3, 3) affine from image pixels to a canvas of ``canvas_wh`` pixels (e.g. the
            weak-perspective alignment to the virtual camera); tiling then splits that canvas.
    """
    img = _as_image(image)
    H, W = img.shape[:2]
    if (pre is None) != (canvas_wh is None):
        raise UserValueError("give both pre (3x3 image -> canvas) and canvas_wh, or neither")
    cw, ch = (W, H) if canvas_wh is None else canvas_wh
    grid = tile_grid(cw, ch, tile, min_tiles, max_tiles)
    mats = tile_matrices(cw, ch, grid, tile, thumbnail, pre)
    src = img[None]
    return torch.cat([warp_align(src, m, (tile, tile), mean=mean, std=std, out_dtype=out_dtype,
                                 return_mask=False, backend=backend).image for m in mats])
