"""Training from dataset folders (tiny configs): reconstruction improves, restart raises codebook
use, resume is exact (also after a crash at any point of the checkpoint swap), save/load
round-trips, malformed tokenizer files get clear errors before anything big is allocated."""
import json

import numpy as np
import pytest
import torch

from beingh0.core.errors import UserError, UserValueError
from beingh0.data.shards import load_index
from beingh0.tokenizer import TokenizerConfig, load_tokenizer, save_tokenizer
from beingh0.tokenizer.data import clips_from_episode, dataset_windows, open_datasets
from beingh0.tokenizer.evaluate import evaluate_clips, evaluate_dataset, format_table, procrustes_align, real_clip
from beingh0.tokenizer.train import TrainConfig, validate
from beingh0.train import checkpoint as ck_mod
from beingh0.train import latest_checkpoint, read_meta
from beingh0.train.tokenizer import train_tokenizer

TINY = TokenizerConfig.preset("tiny")


def _tc(**kw):
    # 400 steps: the anatomical-range synthetic motion (docs/synthetic.md) needs more than the 150 the
    # grasp-synergy generator did before the tiny config's MPJPE falls below its k-means start
    base = dict(steps=400, batch_size=48, lr=3e-3, eval_every=75, ckpt_every=75, norm_windows=512, progress=False, plots=False)
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def trained(synth_sets, tmp_path_factory):
    out = tmp_path_factory.mktemp("tok")
    return train_tokenizer(out, synth_sets[0], synth_sets[1], TINY, _tc(plots=True))


@pytest.fixture(scope="module")
def clips(synth_sets):
    return clips_from_episode(load_index(synth_sets[1]).read(0))     # a left and a right hand track


def test_training_improves_reconstruction(synth_sets, trained, tmp_path):
    untrained = train_tokenizer(tmp_path, synth_sets[0], None, TINY, _tc(steps=1)).tokenizer  # k-means init only
    val = list(dataset_windows(open_datasets(synth_sets[1], reference="first")))
    rec_before, rec_after = validate(untrained, val)["val_recon"], validate(trained.tokenizer, val)["val_recon"]
    assert rec_after < rec_before / 2.0, (rec_before, rec_after)        # normalised feature MSE
    before = evaluate_dataset(untrained, synth_sets[1])
    after = evaluate_dataset(trained.tokenizer, synth_sets[1])
    assert after.pa_mpjpe_mm < before.pa_mpjpe_mm / 1.5, format_table([before, after])
    assert after.mpjpe_mm < before.mpjpe_mm, format_table([before, after])
    assert np.isfinite(after.mean_perplexity()) and 0 < after.mean_utilisation() <= 1
    assert after.windows == len(open_datasets(synth_sets[1]))
    assert "val_recon" in trained.history["eval"][-1]
    assert (trained.out_dir / "losses.png").stat().st_size > 1000
    assert (trained.out_dir / "codebook_usage.png").stat().st_size > 1000


def test_restart_raises_codebook_utilisation(synth_sets, tmp_path):
    use = {}
    for restart in (0, 5):
        cfg = TokenizerConfig.preset("tiny", kmeans_init=False, restart_after=restart)
        res = train_tokenizer(tmp_path / str(restart), synth_sets[0], None, cfg, _tc(steps=20, batch_size=32))
        use[restart] = evaluate_dataset(res.tokenizer, synth_sets[0]).mean_utilisation()
    assert use[5] > use[0] + 0.2, use


def _losses(res):
    return [r["loss"] for r in res.history["train"]]


def test_resume_is_exact(synth_sets, tmp_path):
    tc = _tc(steps=8, eval_every=4, ckpt_every=4, batch_size=40)     # 96 windows: epochs end mid-run
    full = train_tokenizer(tmp_path / "a", synth_sets[0], synth_sets[1], TINY, tc)
    train_tokenizer(tmp_path / "b", synth_sets[0], synth_sets[1], TINY, _tc(steps=4, eval_every=4, ckpt_every=4,
                                                                             batch_size=40))
    resumed = train_tokenizer(tmp_path / "b", synth_sets[0], synth_sets[1], None, tc, resume=True)
    assert len(_losses(full)) == len(_losses(resumed)) == 8
    np.testing.assert_allclose(_losses(resumed), _losses(full), rtol=0, atol=1e-6)
    sa, sb = full.tokenizer.state_dict(), resumed.tokenizer.state_dict()
    for k in sa:
        torch.testing.assert_close(sb[k], sa[k], rtol=0, atol=1e-6, msg=k)
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        train_tokenizer(tmp_path / "c", synth_sets[0], None, None, tc, resume=True)
    with pytest.raises(UserError, match="same --data"):              # another dataset: its positions mean nothing
        train_tokenizer(tmp_path / "b", synth_sets[1], None, None, tc, resume=True)


class _Crash(Exception):
    pass


@pytest.mark.parametrize("crash_at", [1, 4, 8, 9])
def test_resume_after_a_crash_while_a_checkpoint_is_written(synth_sets, tmp_path, monkeypatch, crash_at):
    """fit writes a checkpoint into .step-N.tmp, fsyncs its 7 files (model, optimizer, trainer,
    history, meta, tokenizer json + weights) and the folder, renames it to step-N, fsyncs the
    parent, then deletes the older one. A kill at the k-th fsync (1..8: inside the new copy; 9:
    after the rename, before the old copy is deleted) leaves a complete copy that resume finds:
    the newest one, so that the loss curve stays exact."""
    tc = lambda steps: _tc(steps=steps, eval_every=2, ckpt_every=2, batch_size=32)
    full = train_tokenizer(tmp_path / "full", synth_sets[0], None, TINY, tc(6))
    out = tmp_path / "run"
    train_tokenizer(out, synth_sets[0], None, TINY, tc(2))                  # checkpoint at step 2
    calls = {"n": 0}
    real = ck_mod._fsync

    def crashing(path):
        calls["n"] += 1
        if calls["n"] == crash_at:
            raise _Crash
        return real(path)

    monkeypatch.setattr(ck_mod, "_fsync", crashing)
    with pytest.raises(_Crash):
        train_tokenizer(out, synth_sets[0], None, None, tc(4), resume=True)   # dies writing step 4
    monkeypatch.undo()
    want_step = 4 if crash_at == 9 else 2
    assert read_meta(latest_checkpoint(out))["step"] == want_step
    load_tokenizer(latest_checkpoint(out))                                 # each checkpoint is a tokenizer folder
    resumed = train_tokenizer(out, synth_sets[0], None, None, tc(6), resume=True)
    np.testing.assert_allclose(_losses(resumed), _losses(full), rtol=0, atol=1e-6)
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-00000006"]


def test_encode_decode_and_save_load_round_trip(clips, trained, tmp_path):
    tok = trained.tokenizer
    assert {c.side for c in clips} == {"left", "right"}
    for clip in clips:
        ids, frame = tok.encode(clip)
        seconds = -(-clip.num_frames // 15)
        assert ids.shape == (seconds, tok.layout.tokens_per_block) and ids.dtype == torch.int64
        params = tok.decode(ids, frame, side=clip.side, num_frames=clip.num_frames)
        assert params["hand_pose"].shape == (clip.num_frames, 45)
        # the decoded wrist path is back in the camera frame and on the clip's side
        err = float((params["trans"] - clip.trans).norm(dim=1).mean())
        canon = tok.decode(ids, None, num_frames=clip.num_frames)
        assert err < 0.5 * float((canon["trans"] - clip.trans).norm(dim=1).mean()), clip.side
    path = save_tokenizer(tok, tmp_path / "saved")
    back = load_tokenizer(path)
    torch.testing.assert_close(back.encode(clips[0])[0], tok.encode(clips[0])[0], rtol=0, atol=0)
    assert back.cfg == tok.cfg and torch.equal(back.norm.std, tok.norm.std)
    m = evaluate_clips(tok, clips, "clips")
    assert m.frames == sum(c.num_frames for c in clips) and np.isfinite(m.mpjpe_mm)


def _rewrite(path, **changes):
    from safetensors.torch import load_file, save_file

    state = load_file(str(path / "tokenizer.safetensors"))
    state.update(changes)
    save_file(state, str(path / "tokenizer.safetensors"))


def test_mismatched_files_are_errors(trained, tmp_path):
    path = save_tokenizer(trained.tokenizer, tmp_path / "s")
    meta = json.loads((path / "tokenizer.json").read_text())
    put = lambda m: (path / "tokenizer.json").write_text(json.dumps(m))
    put(dict(meta, config={**meta["config"], "layers": 3}))
    with pytest.raises(UserValueError, match="does not match its config"):
        load_tokenizer(path)
    put(dict(meta, format_version=99))
    with pytest.raises(ValueError, match="format version 99"):
        load_tokenizer(path)
    put(dict(meta, config={**meta["config"], "colour": 1}))
    with pytest.raises(ValueError, match="unknown keys"):
        load_tokenizer(path)
    put(dict(meta, norm={**meta["norm"], "std": meta["norm"]["std"][:5]}))
    with pytest.raises(UserValueError, match="norm.std"):
        load_tokenizer(path)
    put(meta)
    (path / "tokenizer.safetensors").write_bytes(b"not a tensor file")
    with pytest.raises(ValueError, match="corrupt"):
        load_tokenizer(path)
    with pytest.raises(FileNotFoundError, match="not found"):
        load_tokenizer(tmp_path / "nowhere")


@pytest.mark.parametrize("field,value,match", [
    ("dilations", [1] * 20000, "dilations=.*20000 items"),      # 5 GB of modules before the shape check, once
    ("width", 10 ** 9, "width=1000000000"),
    ("codes", True, "codes=True"),
    ("dilations", "931", "dilations"),
    ("ema_decay", float("nan"), "ema_decay"),
])
def test_bad_json_config_is_refused_before_allocating(trained, tmp_path, field, value, match):
    import tracemalloc

    path = save_tokenizer(trained.tokenizer, tmp_path / "s")
    meta = json.loads((path / "tokenizer.json").read_text())
    meta["config"][field] = value
    (path / "tokenizer.json").write_text(json.dumps(meta))
    tracemalloc.start()
    with pytest.raises(UserValueError, match=f"tokenizer.json.*config.*{match}"):
        load_tokenizer(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 50e6, peak


def test_huge_but_valid_config_is_refused_by_size(trained, tmp_path):
    path = save_tokenizer(trained.tokenizer, tmp_path / "s")
    meta = json.loads((path / "tokenizer.json").read_text())
    meta["config"].update(width=4096, code_dim=4096, dilations=[1] * 16, down_t=4)   # each field in range: ~9 G elements
    (path / "tokenizer.json").write_text(json.dumps(meta))
    with pytest.raises(UserValueError, match="elements"):
        load_tokenizer(path)


def test_nan_and_wrong_dtype_weights_are_errors(trained, tmp_path):
    path = save_tokenizer(trained.tokenizer, tmp_path / "s")
    key = next(k for k, v in trained.tokenizer.state_dict().items() if v.dtype == torch.float32 and v.dim() > 1)
    good = trained.tokenizer.state_dict()[key].clone()
    bad = good.clone()
    bad.view(-1)[3] = float("nan")
    _rewrite(path, **{key: bad})
    with pytest.raises(UserValueError, match=f"tokenizer.safetensors: tensor '{key}' contains NaN"):
        load_tokenizer(path)
    _rewrite(path, **{key: good != 0})                                        # bool weights
    with pytest.raises(UserValueError, match=f"tensor '{key}' has dtype BOOL"):
        load_tokenizer(path)
    _rewrite(path, **{key: good.double()})
    with pytest.raises(UserValueError, match=f"tensor '{key}' has dtype F64, expected F32"):
        load_tokenizer(path)
    _rewrite(path, **{key: good})
    load_tokenizer(path)


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
    with pytest.raises(UserValueError, match="invalid TokenizerConfig"):
        TokenizerConfig(code_dim=10, groups=3)
    with pytest.raises(UserValueError, match="unknown tokenizer preset"):
        TokenizerConfig.preset("huge")
    with pytest.raises(UserValueError, match="batch_size=0"):
        TrainConfig(batch_size=0)


def test_procrustes_removes_similarity_transforms():
    g = torch.Generator().manual_seed(0)
    gt = torch.randn(4, 21, 3, generator=g, dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.randn(4, 3, 3, generator=g, dtype=torch.float64))
    q = q * torch.sign(torch.linalg.det(q))[:, None, None]
    pred = 1.7 * gt @ q.transpose(1, 2) + torch.randn(4, 1, 3, generator=g, dtype=torch.float64)
    torch.testing.assert_close(procrustes_align(pred, gt), gt, rtol=0, atol=1e-10)


def test_whole_hand_variant_trains(synth_sets, clips, tmp_path):
    cfg = TokenizerConfig.preset("tiny", part_level=False, groups=4, code_dim=16)
    res = train_tokenizer(tmp_path, synth_sets[0], None, cfg, _tc(steps=3))
    assert "wrist" in res.history["train"][-1]
    ids, _ = res.tokenizer.encode(clips[0])
    assert ids.shape[1] == res.tokenizer.layout.tokens_per_block == 4 * 4 * 2


def test_real_sequence(trained, shared_data):
    clip = real_clip(shared_data, frames=60)
    m = evaluate_clips(trained.tokenizer, [clip], "real")
    assert m.frames == 30 and np.isfinite(m.mpjpe_mm) and m.mpjpe_mm > 0
