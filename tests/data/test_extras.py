"""A missing optional package names the extra to install (one helper, used by every optional import)."""
import sys

import numpy as np
import pytest

from beingh0.core.errors import UserError
from beingh0.data import require
from beingh0.data.extras import MissingExtraError


def _blocked(monkeypatch, *mods):
    for m in mods:
        monkeypatch.setitem(sys.modules, m, None)  # `import m` now raises ImportError


def _lerobot():
    from beingh0.data.lerobot import _pq

    _pq()


def _video():
    from beingh0.data.video import decode_video

    decode_video(b"\0" * 16)


def _egodex():
    from beingh0.data.sources.egodex import _h5

    _h5()


def _distortion():
    from beingh0.data.show import project
    from beingh0.data.synth import SynthConfig, synth_episode

    ep = synth_episode(0, 1, SynthConfig(seconds=0.2, frames=False))
    ep.camera.distortion, ep.camera.distortion_model = np.zeros(4), "radtan"
    project(ep, np.array([[0.0, 0.0, 1.0]]), 0)


@pytest.mark.parametrize("fn, mod, pkg", [(_lerobot, "pyarrow", "pyarrow"), (_video, "av", "av"), (_egodex, "h5py", "h5py"),
                                          (_distortion, "cv2", "opencv-python-headless")])
def test_missing_extra_names_the_extra(monkeypatch, fn, mod, pkg):
    _blocked(monkeypatch, mod, mod + ".parquet", mod + ".compute")
    with pytest.raises(MissingExtraError) as ei:
        fn()
    msg = str(ei.value)
    assert isinstance(ei.value, UserError) and isinstance(ei.value, ImportError)
    assert 'pip install "beingh0[data]"' in msg and pkg in msg and "\n" not in msg


def test_require(monkeypatch):
    assert require("json").dumps([1]) == "[1]"
    _blocked(monkeypatch, "ray")
    with pytest.raises(MissingExtraError, match=r'beingh0\[ray\]'):
        require("ray", "ray", "building on Ray")
