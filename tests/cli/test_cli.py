"""The command line is a thin table over library functions: parse, call, clear errors."""
import json

import numpy as np
import pytest

from beingh0.cli.main import build_parser, main


def test_help_lists_verbs(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for verb in ("info", "demo", "mano", "bench"):
        assert verb in out


def test_info(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "reference  yes" in out and "cpp" in out and "triton" in out


def test_export_convert_round_trip(tmp_path, capsys):
    assert main(["mano", "export-embedded", str(tmp_path), "--format", "pkl"]) == 0
    src = tmp_path / "MANO_LEFT.pkl"
    assert src.exists() and (tmp_path / "MANO_RIGHT.pkl").exists()
    dst = tmp_path / "left.safetensors"
    assert main(["mano", "convert", str(src), str(dst)]) == 0
    from beingh0.mano.model import ManoModel

    a, b = ManoModel.from_file(src), ManoModel.from_file(dst)
    assert a.side == b.side == "left"
    np.testing.assert_array_equal(a.shapedirs.numpy(), b.shapedirs.numpy())


def test_errors_are_messages_not_tracebacks(tmp_path, capsys):
    assert main(["mano", "convert", str(tmp_path / "missing.pkl"), str(tmp_path / "x.npz")]) == 2
    assert "does not exist" in capsys.readouterr().err
    evil = tmp_path / "MANO_RIGHT.pkl"
    evil.write_bytes(b"\x80\x02cos\nsystem\n.")
    assert main(["mano", "convert", str(evil), str(tmp_path / "x.npz")]) == 2
    assert "refusing to load global os.system" in capsys.readouterr().err


def test_bench_parser_defaults():
    a = build_parser().parse_args(["bench", "mano"])
    assert a.device == "cpu" and a.batch == [1, 1024, 65536]


def test_bench_mano_small(tmp_path, capsys):
    pytest.importorskip("smplx")
    path = tmp_path / "bench.json"
    assert main(["bench", "mano", "--batch", "1", "5", "--repeats", "2", "--json", str(path)]) == 0
    recs = json.loads(path.read_text())
    keys = {"op", "impl", "device", "dtype", "shape", "median_ms", "p10_ms", "p90_ms", "peak_mem_mb",
            "max_abs_err_vs_reference", "baseline", "speedup_vs_baseline"}
    assert all(keys <= set(r) for r in recs)
    assert {r["op"] for r in recs} == {"mano_forward", "mano_joints"}
    assert {r["batch"] if "batch" in r else r["shape"][0] for r in recs} == {1, 5}
    for r in recs:
        if r["impl"] != "smplx":
            assert r["max_abs_err_vs_reference"] < 1e-5, r
        else:
            assert r["max_abs_err_vs_reference"] < 1e-5, "our smplx-mode mesh differs from smplx's"


def test_mano_fit_on_real_keypoints(shared_data, tmp_path, capsys):
    src = shared_data / "dex_retargeting_human_hand" / "human_joint_right.npy"
    out, png = tmp_path / "fit.npz", tmp_path / "fit.png"
    assert main(["mano", "fit", str(src), "--out", str(out), "--render", str(png), "--frames", "40"]) == 0
    text = capsys.readouterr().out
    assert "per-joint error (mm)" in text
    from beingh0.mano.fit import FitResult

    res = FitResult.load(out)
    assert res.hand_pose.shape == (40, 45) and res.mean_error_mm < 12.0  # 4.3 mm on all 621 frames
    assert png.stat().st_size > 10_000


def test_mano_fit_rejects_bad_file(tmp_path, capsys):
    bad = tmp_path / "kp.npy"
    np.save(bad, np.zeros((10, 20, 3)))
    assert main(["mano", "fit", str(bad), "--out", str(tmp_path / "o.npz")]) == 2
    assert "(T, 21, 3)" in capsys.readouterr().err


def test_bench_grq_small(tmp_path, capsys):
    """The grq benchmark end to end at a toy size: records, codes equal to the anchor, tokenizer rate."""
    pytest.importorskip("vector_quantize_pytorch")
    path = tmp_path / "grq.json"
    assert main(["bench", "grq", "--n", "300", "--repeats", "1", "--tokenizer-windows", "2", "--json", str(path)]) == 0
    recs = json.loads(path.read_text())
    keys = {"op", "impl", "device", "dtype", "shape", "median_ms", "p10_ms", "p90_ms", "peak_mem_mb",
            "max_abs_err_vs_reference", "baseline", "speedup_vs_baseline"}
    assert all(keys <= set(r) for r in recs)
    enc = {r["impl"]: r for r in recs if r["op"] == "grq_encode"}
    assert {"vector_quantize_pytorch", "reference", "cpp"} <= set(enc)
    assert all(r["codes_equal_baseline"] == 1.0 for r in enc.values())
    assert enc["cpp"]["max_abs_err_vs_reference"] < 1e-5 and enc["cpp"]["shape"] == [300, 2, 8, 512, 256]
    tok = [r for r in recs if r["op"] == "tokenizer_encode"]
    assert {r["impl"] for r in tok} == {"reference", "cpp"} and all(r["hand_seconds_per_s"] > 0 for r in tok)
    assert {r["shape"][0] for r in tok} == {1, 2}
    assert "hand-seconds/s" in capsys.readouterr().out


def test_bench_warp_small(tmp_path):
    pytest.importorskip("cv2")
    path = tmp_path / "warp.json"
    assert main(["bench", "warp", "--size", "64x48", "--batch", "1", "--repeats", "1", "--json", str(path)]) == 0
    recs = {r["impl"]: r for r in json.loads(path.read_text())}
    assert {"cv2_chain", "torch_grid_sample", "cpp"} <= set(recs)
    assert recs["cpp"]["max_abs_err_vs_reference"] < 1e-3 and recs["cpp"]["threads"] >= 1
