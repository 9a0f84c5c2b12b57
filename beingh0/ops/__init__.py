"""The one Python face of every kernel. See ``backend.Backend`` for how an implementation is chosen."""
from .backend import Backend, availability
from .grq import GRQOutput, grq_encode
from .mano import ManoConstants, mano_forward, mano_joints
from .warp import IMAGENET_MEAN, IMAGENET_STD, WarpOutput, resize_matrix, warp_align, warp_align_list

__all__ = [
    "Backend", "availability", "GRQOutput", "grq_encode", "ManoConstants", "mano_forward", "mano_joints",
    "IMAGENET_MEAN", "IMAGENET_STD", "WarpOutput", "resize_matrix", "warp_align", "warp_align_list",
]
