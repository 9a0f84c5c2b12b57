"""The library side of `beingh0 tokenizer train/eval`: dataset folders in, the synthetic default as
one such folder, defaults from TrainConfig, paths from the current directory."""
import os

import pytest

from beingh0.core.errors import UserError
from beingh0.tokenizer.quickstart import default_data_dir, eval_command, synthetic_dataset
from beingh0.train.tokenizer import train_command
from beingh0.tokenizer.train import TrainConfig

FAST = dict(config="tiny", steps=3, norm_windows=256, eval_every=3, ckpt_every=3, plots=False, progress=False)


def test_train_and_eval_from_dataset_folders(synth_sets, tmp_path, capsys):
    out = tmp_path / "run"
    res = train_command(out, [synth_sets[0]], val_data=[synth_sets[1]], **FAST)
    assert res["steps"] == 3 and res["rows"][0]["windows"] > 0
    assert "MPJPE (mm)" in capsys.readouterr().out
    rows = eval_command(out, [synth_sets[1]])
    assert rows[0]["name"] == "held-out" and rows[0]["frames"] == res["rows"][0]["frames"]
    res = train_command(out, [synth_sets[0], synth_sets[1]], val_data=[synth_sets[1]], **{**FAST, "steps": 2})
    assert res["steps"] == 2                                          # several folders as one
    with pytest.raises(UserError, match="unknown training option"):
        train_command(out, [synth_sets[0]], colour=3)
    with pytest.raises(UserError, match="not a dataset folder"):
        train_command(out, [tmp_path], **FAST)


def test_synthetic_default_is_a_dataset_folder(tmp_path, capsys):
    out = tmp_path / "run"
    train_command(out, episodes=2, **FAST)
    train_dir, val_dir = out / "data" / "train", out / "data" / "val"
    assert (train_dir / "index.json").is_file() and (val_dir / "index.json").is_file()
    stamp = (train_dir / "index.json").stat().st_mtime_ns
    res = train_command(out, resume=True, **{**FAST, "steps": 5})      # the run's folder, reused as it is
    assert res["steps"] == 5 and (train_dir / "index.json").stat().st_mtime_ns == stamp
    assert synthetic_dataset(train_dir, 3, 1) == train_dir and (train_dir / "index.json").stat().st_mtime_ns != stamp
    rows = eval_command(out)                                          # the run's held-out folder
    assert rows[0]["name"] == "synthetic held-out" and rows[0]["windows"] == 8 * 6 * 2
    rows = eval_command(out / "tokenizer", episodes=1, seed=3)        # built on the fly, elsewhere
    assert rows[0]["windows"] == 6 * 2 and not (out / "tokenizer" / "data").exists()


def test_resume_without_a_checkpoint_builds_nothing(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        train_command(tmp_path / "run", resume=True, **FAST)
    assert not (tmp_path / "run" / "data").exists()


def test_defaults_live_in_train_config():
    tc = TrainConfig()
    assert (tc.batch_size, tc.lr, tc.warmup) == (128, 1e-3, 20)       # what the CPU quickstart trains with
    import inspect

    sig = inspect.signature(train_command)
    assert not {"batch_size", "lr", "warmup", "steps"} & set(sig.parameters)   # no second copy of a default


def test_default_data_dir_is_relative_to_the_current_directory(tmp_path, monkeypatch):
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    assert default_data_dir().resolve() == (tmp_path / "shared" / "data").resolve()
    assert "site-packages" not in os.fspath(default_data_dir())
