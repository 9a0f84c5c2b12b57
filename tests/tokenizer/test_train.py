"""Training on synthetic motion (tiny configs): reconstruction improves, restart raises codebook
use, resume is exact, save/load round-trips, bad input gets clear errors, CLI and metrics."""
import json

import numpy as np
import pytest
import torch

from beingh0.tokenizer import TokenizerConfig, load_tokenizer, save_tokenizer
from beingh0.tokenizer.evaluate import evaluate_clips, format_table, procrustes_align, real_clip
from beingh0.tokenizer.synthetic import random_clips
from beingh0.tokenizer.data import prepare_clip
from beingh0.tokenizer.train import TrainConfig, train_tokenizer, validate

TINY = TokenizerConfig.preset("tiny")


def _tc(**kw):
    base = dict(steps=150, batch_size=48, lr=3e-3, eval_every=75, ckpt_every=75, norm_windows=512, progress=False, plots=False)
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def clips():
    return random_clips(12, seed=11, seconds=(3.0, 12.0)), random_clips(3, seed=12, seconds=(3.0, 5.0))


@pytest.fixture(scope="module")
def trained(clips, tmp_path_factory):
    out = tmp_path_factory.mktemp("tok")
    return train_tokenizer(out, clips[0], clips[1], TINY, _tc(plots=True), verbose=False)


def test_training_improves_reconstruction(clips, trained, tmp_path):
    untrained = train_tokenizer(tmp_path, clips[0], None, TINY, _tc(steps=1), verbose=False).tokenizer  # k-means init only
    val = [prepare_clip(c) for c in clips[1]]
    rec_before, rec_after = validate(untrained, val)["val_recon"], validate(trained.tokenizer, val)["val_recon"]
    assert rec_after < rec_before / 2.0, (rec_before, rec_after)        # normalised feature MSE
    before = evaluate_clips(untrained, val)
    after = evaluate_clips(trained.tokenizer, val)
    assert after.pa_mpjpe_mm < before.pa_mpjpe_mm / 1.5, format_table([before, after])
    assert after.mpjpe_mm < before.mpjpe_mm, format_table([before, after])
    assert np.isfinite(after.mean_perplexity()) and 0 < after.mean_utilisation() <= 1
    assert (trained.out_dir / "losses.png").stat().st_size > 1000
    assert (trained.out_dir / "codebook_usage.png").stat().st_size > 1000


def test_restart_raises_codebook_utilisation(clips, tmp_path):
    use = {}
    for restart in (0, 5):
        cfg = TokenizerConfig.preset("tiny", kmeans_init=False, restart_after=restart)
        res = train_tokenizer(tmp_path / str(restart), clips[0], None, cfg, _tc(steps=20, batch_size=32), verbose=False)
        use[restart] = evaluate_clips(res.tokenizer, clips[1]).mean_utilisation()
    assert use[5] > use[0] + 0.2, use


def test_resume_is_exact(clips, tmp_path):
    tc = _tc(steps=8, eval_every=4, ckpt_every=4)
    full = train_tokenizer(tmp_path / "a", clips[0], clips[1], TINY, tc, verbose=False)
    train_tokenizer(tmp_path / "b", clips[0], clips[1], TINY, _tc(steps=4, eval_every=4, ckpt_every=4), verbose=False)
    resumed = train_tokenizer(tmp_path / "b", clips[0], clips[1], None, tc, resume=True, verbose=False)
    la = [r["loss"] for r in full.history["train"]]
    lb = [r["loss"] for r in resumed.history["train"]]
    assert len(la) == len(lb) == 8
    np.testing.assert_allclose(lb, la, rtol=0, atol=1e-6)
    sa, sb = full.tokenizer.state_dict(), resumed.tokenizer.state_dict()
    for k in sa:
        torch.testing.assert_close(sb[k], sa[k], rtol=0, atol=1e-6, msg=k)
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        train_tokenizer(tmp_path / "c", clips[0], None, None, tc, resume=True, verbose=False)


def test_encode_decode_and_save_load_round_trip(clips, trained, tmp_path):
    tok = trained.tokenizer
    clip = clips[1][0]
    ids, frame = tok.encode(clip)
    seconds = -(-clip.num_frames // 15)
    assert ids.shape == (seconds, tok.layout.tokens_per_block) and ids.dtype == torch.int64
    params = tok.decode(ids, frame, num_frames=clip.num_frames)
    assert params["hand_pose"].shape == (clip.num_frames, 45)
    # the decoded wrist path is back in the camera frame (far closer than the canonical-frame path)
    err = float((params["trans"] - clip.trans).norm(dim=1).mean())
    canon = tok.decode(ids, None, num_frames=clip.num_frames)
    assert err < 0.5 * float((canon["trans"] - clip.trans).norm(dim=1).mean())
    path = save_tokenizer(tok, tmp_path / "saved")
    back = load_tokenizer(path)
    torch.testing.assert_close(back.encode(clip)[0], ids, rtol=0, atol=0)
    torch.testing.assert_close(back.decode_features(ids), tok.decode_features(ids), rtol=0, atol=0)
    assert back.cfg == tok.cfg and torch.equal(back.norm.std, tok.norm.std)


def test_mismatched_files_are_errors(trained, tmp_path):
    path = save_tokenizer(trained.tokenizer, tmp_path / "s")
    meta = json.loads((path / "tokenizer.json").read_text())
    bad = dict(meta, config={**meta["config"], "layers": 3})
    (path / "tokenizer.json").write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="does not match its config"):
        load_tokenizer(path)
    (path / "tokenizer.json").write_text(json.dumps(dict(meta, format_version=99)))
    with pytest.raises(ValueError, match="format version 99"):
        load_tokenizer(path)
    (path / "tokenizer.json").write_text(json.dumps(dict(meta, config={**meta["config"], "colour": 1})))
    with pytest.raises(ValueError, match="unknown keys"):
        load_tokenizer(path)
    (path / "tokenizer.json").write_text(json.dumps(meta))
    (path / "tokenizer.safetensors").write_bytes(b"not a tensor file")
    with pytest.raises(ValueError, match="corrupt"):
        load_tokenizer(path)
    with pytest.raises(FileNotFoundError, match="not found"):
        load_tokenizer(tmp_path / "nowhere")


def test_bad_input_errors(trained):
    tok = trained.tokenizer
    with pytest.raises(ValueError, match=r"\(T, 162\).*D114"):
        tok.encode_features(torch.zeros(20, 114, dtype=torch.float64))
    nan = torch.zeros(20, 162, dtype=torch.float64)
    nan[4, 7] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        tok.encode_features(nan)
    n = tok.layout.tokens_per_block
    with pytest.raises(ValueError, match="outside"):
        tok.decode(torch.full((1, n), tok.layout.vocab_size))
    with pytest.raises(ValueError, match="malformed"):
        tok.decode(torch.zeros(1, n, dtype=torch.int64))
    with pytest.raises(ValueError, match=f"blocks of {n} tokens"):
        tok.decode(torch.zeros(1, n - 1, dtype=torch.int64))
    with pytest.raises(ValueError, match="windows must be"):
        tok(torch.zeros(2, 15, 162))
    with pytest.raises(ValueError, match="invalid TokenizerConfig"):
        TokenizerConfig(code_dim=10, groups=3)
    with pytest.raises(ValueError, match="unknown tokenizer preset"):
        TokenizerConfig.preset("huge")


def test_procrustes_removes_similarity_transforms():
    g = torch.Generator().manual_seed(0)
    gt = torch.randn(4, 21, 3, generator=g, dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.randn(4, 3, 3, generator=g, dtype=torch.float64))
    q = q * torch.sign(torch.linalg.det(q))[:, None, None]
    pred = 1.7 * gt @ q.transpose(1, 2) + torch.randn(4, 1, 3, generator=g, dtype=torch.float64)
    torch.testing.assert_close(procrustes_align(pred, gt), gt, rtol=0, atol=1e-10)


def test_whole_hand_variant_trains(clips, tmp_path):
    cfg = TokenizerConfig.preset("tiny", part_level=False, groups=4, code_dim=16)
    res = train_tokenizer(tmp_path, clips[0], None, cfg, _tc(steps=3), verbose=False)
    assert "wrist" in res.history["train"][-1]
    ids, _ = res.tokenizer.encode(clips[1][0])
    assert ids.shape[1] == res.tokenizer.layout.tokens_per_block == 4 * 4 * 2


def test_real_sequence(trained, shared_data):
    clip = real_clip(shared_data, frames=60, verbose=False)
    m = evaluate_clips(trained.tokenizer, [clip], "real")
    assert m.frames == 30 and np.isfinite(m.mpjpe_mm) and m.mpjpe_mm > 0


def test_cli(trained, tmp_path, capsys):
    from beingh0.cli.main import main

    with pytest.raises(SystemExit):
        main(["tokenizer", "train", "--help"])
    assert "--resume" in capsys.readouterr().out
    assert main(["tokenizer", "eval", str(trained.out_dir), "--episodes", "1"]) == 0
    out = capsys.readouterr().out
    assert "MPJPE (mm)" in out and "synthetic held-out" in out
    assert main(["tokenizer", "eval", str(tmp_path / "missing")]) == 2
    assert "not found" in capsys.readouterr().err
