"""The text-motion retrieval model: inputs, training through fit, R@3 far above chance, save/load."""
import json

import numpy as np
import pytest
import torch

from beingh0.core.errors import UserFileError, UserValueError
from beingh0.data.instructions import instruction_samples
from beingh0.data.synth import SynthConfig, synth_dataset
from beingh0.vla import retrieval as R


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("retrieval")
    synth_dataset(root / "train", 4, SynthConfig(seconds=2.0, frames=False), seed=3, progress=False)
    return root


def test_sample_text_recovers_the_instruction():
    ep = {"key": "e", "source": "s", "hands": ["left", "right"], "duration": 3.0,
          "text": {"instruction": "Pick up the red cup.", "summary": "The hands pick up the cup.",
                   "per_hand": {"left": "hold the plate"}, "segments": []}}
    got = {(s["task"], s["hand"]): R.sample_text(s) for s in instruction_samples(ep, seed=1)}
    assert got[("generation", "both")] == "pick up the red cup"
    assert got[("generation", "left")] == "hold the plate"
    assert got[("translation", "both")] == "the hands pick up the cup"
    for tid in range(20):  # every generation template gives the instruction back
        s = {"task": "generation", "template": tid, "prompt": R.TEMPLATES["generation"][tid].format(
            instruction="twist the blue lid", duration="1 second", hand="the left hand")}
        assert R.sample_text(s) == "twist the blue lid"


def test_motion_input_masks_missing_hands():
    cfg = R.RetrievalConfig()
    rng = np.random.default_rng(0)
    h = {"global_orient": rng.normal(size=(20, 3)), "hand_pose": rng.normal(size=(20, 45)),
         "trans": rng.normal(size=(20, 3)), "valid": np.arange(20) < 15}
    x, m = R.motion_input({"right": h}, cfg)
    D = 99
    assert x.shape == (20, 2 * D + 2) and m.tolist() == [True] * 15 + [False] * 5
    assert (x[:, :D] == 0).all() and (x[:, 2 * D] == 0).all() and (x[:15, 2 * D + 1] == 1).all()
    assert (x[15:] == 0).all()
    long = {k: np.concatenate([v] * 5) for k, v in h.items()}
    assert R.motion_input({"left": long}, cfg)[0].shape[0] == cfg.max_frames


def test_trained_model_beats_chance_and_round_trips(data, tmp_path):
    cfg = R.RetrievalConfig(width=32, layers=1, heads=2, embed_dim=16, dropout=0.0, max_seconds=2)
    tr = R.RetrievalTrain(steps=40, batch_size=32, lr=3e-3, progress=False, num_threads=1, device="cpu")
    rep = R.train_retrieval([data / "train"], tmp_path / "ret", None, cfg, tr, verbose=False)
    s = rep["train"]
    assert s["pairs"] > 20
    # far above chance on its own training pairs, both directions
    assert s["m2t_r3"] > 3 * s["chance_r3"] and s["t2m_r3"] > 3 * s["chance_r3"], s
    assert json.loads((tmp_path / "ret" / "report.json").read_text())["steps"] == 40
    m = R.load_retrieval(tmp_path / "ret")
    train, held = R._split_pairs(R.dataset_pairs([data / "train"], cfg), 0.2, tr.seed)
    a, _ = R.embed_pairs(m, held)
    assert torch.allclose(a.norm(dim=-1), torch.ones(len(held)), atol=1e-5)
    assert R.retrieval_scores(m, held) == pytest.approx(rep["held_out"])


def test_bad_inputs(tmp_path):
    with pytest.raises(UserFileError, match="no retrieval model"):
        R.load_retrieval(tmp_path)
    with pytest.raises(UserFileError, match="not a dataset folder"):
        R.dataset_pairs([tmp_path], R.RetrievalConfig())
    with pytest.raises(UserValueError, match="multiple of heads"):
        R.RetrievalConfig(width=30, heads=4)
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / R.CONFIG).write_text("{nope")
    (tmp_path / "r" / R.WEIGHTS).write_bytes(b"")
    with pytest.raises(UserValueError, match="not valid JSON"):
        R.load_retrieval(tmp_path / "r")


def test_resume_continues_exactly(data, tmp_path):
    from dataclasses import replace

    cfg = R.RetrievalConfig(width=16, layers=1, heads=2, embed_dim=8, max_seconds=2)
    tr = R.RetrievalTrain(steps=6, batch_size=16, progress=False, num_threads=1, device="cpu", ckpt_every=3)
    R.train_retrieval([data / "train"], tmp_path / "a", None, cfg, tr, verbose=False)
    cut = R.train_retrieval([data / "train"], tmp_path / "b", None, cfg, replace(tr, max_seconds=1e-3), verbose=False)
    assert cut["stopped"] == "time" and cut["steps"] < 6                                       # interrupted early
    rep = R.train_retrieval([data / "train"], tmp_path / "b", None, cfg, tr, verbose=False)   # the same call again
    assert rep["steps"] == 6
    a, b = R.load_retrieval(tmp_path / "a").state_dict(), R.load_retrieval(tmp_path / "b").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
