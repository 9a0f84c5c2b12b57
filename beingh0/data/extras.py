"""Optional dependencies of the data layer: one place that imports them and says what to install.

The runtime needs only torch, numpy, matplotlib, tqdm and safetensors. Readers of real sources and
video I/O need the ``data`` extra (h5py, pyarrow, av, opencv); cluster builds the ``ray`` extra.
Every optional import in ``beingh0.data`` goes through :func:`require`, so a missing package is a
one-line :class:`MissingExtraError` naming the extra to install, never a bare ImportError.
"""
from __future__ import annotations

import importlib
from types import ModuleType

from ..core.errors import UserError

#: pip distribution of each optional top-level module (for the message)
PIP_NAMES = {"cv2": "opencv-python-headless", "av": "av", "h5py": "h5py", "pyarrow": "pyarrow", "ray": "ray"}


class MissingExtraError(UserError, ImportError):
    """An optional package is not installed; the message names the extra that brings it."""


def require(module: str, extra: str = "data", purpose: str | None = None) -> ModuleType:
    """``importlib.import_module(module)``, or a :class:`MissingExtraError` that says
    ``pip install "beingh0[<extra>]"`` (``purpose``: what needs it, for the message)."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        top = module.split(".")[0]
        if e.name is not None and e.name.split(".")[0] != top:  # the package is there but broken: a bug, keep it
            raise
        pkg = PIP_NAMES.get(top, top)
        raise MissingExtraError(f"{purpose or module} needs the optional package {pkg!r}, which is not installed: "
                                f'pip install "beingh0[{extra}]" (or pip install {pkg})') from None
