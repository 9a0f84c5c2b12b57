"""The one Python face of every kernel. See ``backend.Backend`` for how an implementation is chosen."""
from .backend import Backend, availability
from .mano import ManoConstants, mano_forward, mano_joints

__all__ = ["Backend", "availability", "ManoConstants", "mano_forward", "mano_joints"]
