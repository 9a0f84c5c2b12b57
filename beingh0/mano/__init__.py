"""The MANO hand layer: safe loading, the model module, fitting and rendering.

Builds on ``beingh0.core`` (index tables, reference LBS, rotations) and ``beingh0.ops`` (kernels);
the index tables are re-exported here as ``beingh0.mano.constants`` for convenience.
"""
from ..core import constants  # noqa: F401
from .io import UnsafePickleError, load_mano_pickle, load_model_file, save_model
from .model import ManoModel, ManoOutput, hand_model, mirror_points, mirror_pose
from .embedded import generate_hand_model, write_mano_pickle

__all__ = ["ManoModel", "ManoOutput", "hand_model", "mirror_pose", "mirror_points", "load_model_file",
           "load_mano_pickle", "save_model", "UnsafePickleError", "generate_hand_model", "write_mano_pickle",
           "constants"]
