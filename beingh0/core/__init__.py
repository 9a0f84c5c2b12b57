"""The leaf of the dependency stack (docs/architecture.md): what every layer shares and nothing else.

- :mod:`beingh0.core.errors`: :class:`UserError`, the one exception type for a user's mistake (the
  command line prints it as one line; every other exception is a bug and keeps its traceback).
- :mod:`beingh0.core.constants`: MANO's index tables (kinematic tree, joint and keypoint orders).
- :mod:`beingh0.core.rotations`: the one rotation implementation (axis-angle, matrices, quaternions, 6D).
- :mod:`beingh0.core.lbs`: the plain-torch MANO forward pass, the reference every kernel is tested against.

It imports only torch and the standard library, so ``beingh0.ops`` (kernels) and ``beingh0.mano``
(the hand model) both build on it without importing each other in a cycle.
"""
from . import constants, errors, lbs, rotations  # noqa: F401
from .errors import UserError  # noqa: F401

__all__ = ["UserError", "constants", "errors", "lbs", "rotations"]
