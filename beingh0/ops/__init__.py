"""The one Python face of every kernel. See ``backend.Backend`` for how an implementation is chosen,
``_scaffold`` for what every op shares, ``registry`` for the list of ops the contract test runs
over, and docs/adding-an-op.md for how to add one."""
from .backend import Backend, availability
from .ce import fused_linear_cross_entropy, fused_linear_cross_entropy_reference, masked_ce_loss, motion_restrict
from .grq import GRQOutput, grq_encode, grq_encode_reference
from .mano import ManoConstants, ManoOutput, mano_forward, mano_forward_reference, mano_joints, mano_joints_reference
from .warp import (IMAGENET_MEAN, IMAGENET_STD, WarpOptions, WarpOutput, resize_matrix, warp_align, warp_align_list,
                   warp_align_reference)

__all__ = [
    "Backend", "availability", "fused_linear_cross_entropy", "fused_linear_cross_entropy_reference", "masked_ce_loss",
    "motion_restrict", "GRQOutput", "grq_encode", "grq_encode_reference", "ManoConstants", "ManoOutput",
    "mano_forward", "mano_forward_reference", "mano_joints", "mano_joints_reference", "IMAGENET_MEAN", "IMAGENET_STD",
    "WarpOptions", "WarpOutput", "resize_matrix", "warp_align", "warp_align_list", "warp_align_reference",
]
