"""Physical-space alignment (paper section 4.2): weak-perspective camera alignment and view-invariant balancing.

- ``camera``: ``Intrinsics`` (with OpenCV distortion), ``TargetCamera``, ``OFFICIAL_TARGET``.
- ``geometry``: ``align_matrix`` -> one affine from source pixels to the model input, and ``K_model``;
  ``model_from_frame_matrix`` (the target camera's resize rule); ``resize_matrix`` is
  ``beingh0.ops.warp.resize_matrix`` (sizes as (width, height)), re-exported.
- ``balance``: depth scaling and in-plane rotation with rules (``BalanceConfig``, ``draw_balance``,
  ``rotation_z``).
- ``sampler``: ``BalanceSampler`` evens out hand-position distributions across sources; ``plot_balance``.
- ``transform``: ``AlignTransform``, the data loader's transform hook (images via ``beingh0.ops.warp``).

See docs/align.md for the conventions and the sample-dict keys.
"""
from .balance import (BalanceConfig, BalanceDraw, BalanceParams, HandState, balance_affine, check_rules, draw_balance,
                      rotation_z, transform_mano, transform_points, wrist_features)
from .camera import OFFICIAL_TARGET, Intrinsics, TargetCamera, project_points, undistort_pixels
from .geometry import Alignment, align_matrix, apply_affine, model_from_frame_matrix

_LAZY = {"BalanceSampler": "sampler", "plot_balance": "sampler", "AlignTransform": "transform",
         "align_image_file": "viz", "resize_matrix": "geometry"}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'beingh0.align' has no attribute {name!r}")


__all__ = ["BalanceConfig", "BalanceDraw", "BalanceParams", "HandState", "balance_affine", "check_rules", "draw_balance",
           "rotation_z", "transform_mano", "transform_points", "wrist_features", "OFFICIAL_TARGET", "Intrinsics", "TargetCamera",
           "project_points", "undistort_pixels", "Alignment", "align_matrix", "apply_affine", "model_from_frame_matrix",
           "resize_matrix", *_LAZY]
