"""Motion representation: rotations, MANO-D51...D162 features, windows and canonical frames.

Ground floor (ENGINEERING.md section 1): imports only torch, numpy and ``beingh0.core`` (rotations, index tables).
"""
from .features import FEATURE_NAMES, FeatureSpec, NormStats, decode_features, encode_features, merge_parts, split_parts
from ..core.rotations import (
    axis_angle_to_matrix,
    axis_angle_to_quaternion,
    matrix_to_6d,
    matrix_to_axis_angle,
    matrix_to_quaternion,
    quaternion_conjugate,
    quaternion_multiply,
    quaternion_slerp,
    quaternion_to_axis_angle,
    quaternion_to_matrix,
    sixd_to_matrix,
    slerp_axis_angle,
)
from .windows import (
    FPS,
    REFERENCE_BACK_FRAMES,
    WINDOW_FRAMES,
    WINDOW_PAD,
    CanonicalFrame,
    canonical_frame,
    canonicalize,
    decanonicalize,
    make_windows,
    resample,
    sample_reference_index,
)

__all__ = [
    "FEATURE_NAMES", "FeatureSpec", "NormStats", "decode_features", "encode_features", "merge_parts", "split_parts",
    "axis_angle_to_matrix", "axis_angle_to_quaternion", "matrix_to_6d", "matrix_to_axis_angle",
    "matrix_to_quaternion", "quaternion_conjugate", "quaternion_multiply", "quaternion_slerp",
    "quaternion_to_axis_angle", "quaternion_to_matrix", "sixd_to_matrix", "slerp_axis_angle",
    "FPS", "REFERENCE_BACK_FRAMES", "WINDOW_FRAMES", "WINDOW_PAD", "CanonicalFrame", "canonical_frame",
    "canonicalize", "decanonicalize", "make_windows", "resample", "sample_reference_index",
]
