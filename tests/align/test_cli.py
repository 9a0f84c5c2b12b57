"""``beingh0 align`` on a real video frame, and its errors."""
import json

import numpy as np
import pytest

from beingh0.cli.main import build_parser, main


def test_align_real_frame(shared_data, tmp_path, capsys):
    pytest.importorskip("av")
    video = shared_data / "dex_retargeting_human_hand" / "human_hand_video.mp4"
    if not video.exists():
        pytest.skip(f"{video} is absent")
    kp = np.array([[640.0, 360.0], [700.0, 300.0], [10.0, 10.0]])         # (N, 2) source pixels
    np.save(tmp_path / "kp.npy", kp)
    out = tmp_path / "out"
    assert main(["align", str(video), "--intrinsics", "900,900,640,360", "--keypoints", str(tmp_path / "kp.npy"),
                 "--out", str(out), "--frame", "3", "--backend", "reference"]) == 0
    printed = capsys.readouterr().out
    aligned = out / "human_hand_video_f3_aligned.png"
    assert str(aligned) in printed and (out / "human_hand_video_f3_before_after.png").stat().st_size > 20_000
    from PIL import Image

    img = np.asarray(Image.open(aligned))
    assert img.shape == (448, 448, 3) and img.std() > 10                     # real content, not a blank frame
    info = json.loads((out / "human_hand_video_f3_align.json").read_text())
    # the principal point lands on the target frame's principal point; the 70.8 deg source covers (736.6 / 900)^2 of it
    assert info["keypoints_model_px"][0] == pytest.approx([223.5 + 0.5 * 448 / 1920, 223.5 + 0.5 * 448 / 1080], abs=1e-6)
    assert info["valid_fraction"] == pytest.approx((736.6339 / 900 * 1280 / 1920) ** 2, abs=0.005)  # same aspect: s^2
    assert info["model_intrinsics"]["fx"] == pytest.approx(736.6339 * 448 / 1920)


@pytest.mark.parametrize("intr, msg", [("0,900,640,360", "fx must be > 0"), ("900,-1,640,360", "fy must be > 0"),
                                        ("nan,900,640,360", "fx must be finite"), ("900,900,640", "needs 4"),
                                        ("a,b,c,d", "comma-separated numbers")])
def test_bad_intrinsics_are_clear_errors(tmp_path, capsys, intr, msg):
    from PIL import Image

    Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(tmp_path / "x.png")
    assert main(["align", str(tmp_path / "x.png"), "--intrinsics", intr, "--out", str(tmp_path)]) == 2
    assert msg in capsys.readouterr().err


def test_other_errors_and_3d_keypoints(tmp_path, capsys):
    from PIL import Image

    Image.fromarray(np.full((30, 40, 3), 128, np.uint8)).save(tmp_path / "x.png")
    assert main(["align", str(tmp_path / "missing.png"), "--intrinsics", "40,40,20,15"]) == 2
    assert "does not exist" in capsys.readouterr().err
    np.save(tmp_path / "bad.npy", np.zeros((21, 4)))
    assert main(["align", str(tmp_path / "x.png"), "--intrinsics", "40,40,20,15", "--keypoints", str(tmp_path / "bad.npy"),
                 "--out", str(tmp_path)]) == 2
    assert "(21, 2) pixels or (21, 3)" in capsys.readouterr().err
    assert main(["align", str(tmp_path / "x.png"), "--intrinsics", "40,40,20,15", "--dist", "0.1,0.2",
                 "--out", str(tmp_path)]) == 2
    assert "needs 4 or 5" in capsys.readouterr().err
    np.save(tmp_path / "kp3.npy", np.array([[0.0, 0.0, 0.5], [0.05, 0.02, 0.45]]))
    assert main(["align", str(tmp_path / "x.png"), "--intrinsics", "40,40,20,15", "--keypoints", str(tmp_path / "kp3.npy"),
                 "--out", str(tmp_path), "--size", "64", "--resize", "letterbox", "--backend", "reference"]) == 0
    info = json.loads((tmp_path / "x_align.json").read_text())
    assert info["keypoints_model_px"][0] == pytest.approx([31.5 + 0.5 * 64 / 1920] * 2, abs=1e-9)  # cx = 960, not 959.5
    assert build_parser().parse_args(["align", "x.png", "--intrinsics", "1,1,1,1"]).size == 448
