"""``beingh0 data synth`` and ``beingh0 data show`` end to end, and show on real-source-like episodes."""
import numpy as np
import pytest
from PIL import Image

from beingh0.cli.main import main
from beingh0.data import save_episode
from beingh0.data.episode import Frames
from beingh0.data.show import caption_at, episode_keypoints, project, show_episode
from beingh0.data.synth import SynthConfig, synth_episode


def test_synth_and_show_cli(tmp_path, capsys):
    out = tmp_path / "syn"
    assert main(["data", "synth", "--out", str(out), "--episodes", "2", "--seconds", "0.6", "--size", "64x48", "--quiet"]) == 0
    from beingh0.data.shards import load_index

    index = load_index(out)
    assert len(index) == 2 and (out / "manifest.json").is_file()
    assert "frames/s" in capsys.readouterr().out
    ep = index.read(0)
    assert ep.frames.kind == "mp4" and ep.camera.width == 64 and ep.camera.height == 48
    tars = [tmp_path / "e0.tar", tmp_path / "e1.tar"]  # single-episode files work too
    save_episode(ep, tars[0])
    save_episode(index.read(1), tars[1])
    png = tmp_path / "a.png"
    assert main(["data", "show", str(out), "--key", "0", "--out", str(png), "--frames", "0,4,8"]) == 0
    im = np.asarray(Image.open(png))
    assert im.shape[1] == 3 * 64 and im.shape[0] > 48 and im.std() > 10
    mp4 = tmp_path / "a.mp4"
    assert main(["data", "show", str(tars[1]), "--out", str(mp4)]) == 0
    from beingh0.data.video import decode_video

    assert decode_video(mp4.read_bytes()).shape[0] == ep.num_frames
    # motion-only: a 3-D plot, said clearly; a video is refused with advice
    assert main(["data", "synth", "--out", str(tmp_path / "mo"), "--episodes", "1", "--seconds", "0.5", "--no-frames", "--quiet"]) == 0
    mo = tmp_path / "mo.tar"
    save_episode(load_index(tmp_path / "mo").read(0), mo)
    capsys.readouterr()
    assert main(["data", "show", str(mo), "--out", str(tmp_path / "mo.png")]) == 0
    assert "motion-only" in capsys.readouterr().out and (tmp_path / "mo.png").stat().st_size > 1000
    assert main(["data", "show", str(mo), "--out", str(tmp_path / "mo.mp4")]) == 2
    assert "motion-only" in capsys.readouterr().err
    # bad input: clear errors, exit code 2
    assert main(["data", "synth", "--out", str(tmp_path / "x"), "--episodes", "1", "--size", "64by48"]) == 2
    assert "--size" in capsys.readouterr().err
    assert main(["data", "show", str(tars[0]), "--out", str(tmp_path / "x.gif")]) == 2
    assert main(["data", "show", str(tars[0]), "--frames", "99"]) == 2
    assert main(["data", "show", str(tmp_path / "missing.tar")]) == 2


def test_show_external_frames_need_root(tmp_path):
    """Real-source episodes reference an external video: show reads it from --root."""
    ep = synth_episode(0, 4, SynthConfig(seconds=0.4, size=(64, 48)))
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "clip.mp4").write_bytes(ep.frames.data)
    ep.frames = Frames("external", np.arange(ep.num_frames, dtype=np.int64), None, "videos/clip.mp4")
    ep.source, ep.license = "somesource", "CC-BY-NC-4.0"
    p = save_episode(ep, tmp_path / "ext.tar")
    with pytest.raises(ValueError, match="root"):
        show_episode(p, tmp_path / "e.png")
    out = show_episode(p, tmp_path / "e.png", root=tmp_path)
    assert np.asarray(Image.open(out)).std() > 10


def test_projection_with_distortion_and_captions():
    ep = synth_episode(0, 5, SynthConfig(seconds=1.2, frames=False))
    k = episode_keypoints(ep)["right"]
    uv = project(ep, k[0], 0)
    fx, fy, cx, cy = ep.camera.intrinsics[0]
    np.testing.assert_allclose(uv[:, 0], fx * k[0, :, 0] / k[0, :, 2] + cx, rtol=1e-9)
    ep.camera.distortion, ep.camera.distortion_model = np.array([0.0, 0.0, 0.0, 0.0]), "radtan"
    np.testing.assert_allclose(project(ep, k[0], 0), uv, atol=1e-6)  # zero distortion = pinhole, through OpenCV
    assert caption_at(ep, 0) == next(s.caption for s in ep.text.segments if s.hand == "both" and s.t0 == 0)
    assert caption_at(ep, ep.num_frames - 1)
