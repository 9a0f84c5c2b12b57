"""``beingh0 mano demo`` (``beingh0.data.synth.mano_demo.run_demo``): synthesise a grasp, add keypoint
noise, fit it back, report mm, render. Small T and few iterations."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from beingh0.core.errors import UserValueError
from beingh0.data.synth.mano_demo import run_demo
from beingh0.mano import hand_model
from beingh0.mano.fit import FitConfig

BACKEND = None if importlib.util.find_spec("beingh0._C") is not None else "reference"


def test_demo_smoke(tmp_path, capsys):
    n = run_demo(tmp_path, frames=24, noise_mm=3.0, backend=BACKEND, model=hand_model("right"), verbose=True,
                 config=FitConfig(backend=BACKEND, stage2_iters=80, refine_iters=0))
    assert n["kp_err_vs_truth_mm"] < n["input_noise_measured_mm"]
    assert 2.0 < n["input_noise_measured_mm"] < 6.0           # 3 mm per axis -> ~4.8 mm mean 3D distance
    assert Path(n["render_path"]).stat().st_size > 10_000 and Path(n["params_path"]).is_file()
    out = capsys.readouterr().out
    assert "fitted keypoints vs clean ground truth" in out and "| " in out and "mm" in out


@pytest.mark.parametrize("kw, match", [({"frames": 2}, "frames"), ({"frames": 10.5}, "frames"), ({"frames": True}, "frames"),
                                       ({"noise_mm": -1.0}, "noise_mm"), ({"noise_mm": float("nan")}, "noise_mm")])
def test_demo_rejects_bad_arguments_with_a_user_error(tmp_path, kw, match):
    with pytest.raises(UserValueError, match=match):
        run_demo(tmp_path / "x", verbose=False, **kw)
    assert not (tmp_path / "x").exists()      # checked before anything is written
