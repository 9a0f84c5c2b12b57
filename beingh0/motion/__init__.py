"""Motion representation: rotations, MANO-D51...D162 features, windows and canonical frames.

Above ``beingh0.mano`` (ENGINEERING.md section 1): imports torch, numpy, ``beingh0.core`` (rotations, index
tables) and ``beingh0.mano`` (hand model, mirroring). The left-hand convention and the one
parameters -> features path live in :mod:`beingh0.motion.hands`.
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
from .hands import SIDES, from_right_hand, hand_features, hand_joints, to_right_hand
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
    "SIDES", "to_right_hand", "from_right_hand", "hand_joints", "hand_features",
    "FEATURE_NAMES", "FeatureSpec", "NormStats", "decode_features", "encode_features", "merge_parts", "split_parts",
    "axis_angle_to_matrix", "axis_angle_to_quaternion", "matrix_to_6d", "matrix_to_axis_angle",
    "matrix_to_quaternion", "quaternion_conjugate", "quaternion_multiply", "quaternion_slerp",
    "quaternion_to_axis_angle", "quaternion_to_matrix", "sixd_to_matrix", "slerp_axis_angle",
    "FPS", "REFERENCE_BACK_FRAMES", "WINDOW_FRAMES", "WINDOW_PAD", "CanonicalFrame", "canonical_frame",
    "canonicalize", "decanonicalize", "make_windows", "resample", "sample_reference_index",
]
