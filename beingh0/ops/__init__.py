"""The one Python face of every kernel. See ``backend.Backend`` for how an implementation is chosen."""
from .backend import Backend, availability
from .mano import ManoConstants, mano_forward, mano_joints
from .warp import IMAGENET_MEAN, IMAGENET_STD, WarpOutput, resize_matrix, warp_align, warp_align_list

__all__ = [
    "Backend", "availability", "ManoConstants", "mano_forward", "mano_joints",
    "IMAGENET_MEAN", "IMAGENET_STD", "WarpOutput", "resize_matrix", "warp_align", "warp_align_list",
]
