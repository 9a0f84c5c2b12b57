"""`beingh0 data tokenize`: the motion-id sidecar round trip, idempotence, resume and staleness."""
import json

import numpy as np
import pytest
import torch

from beingh0.core.errors import UserError
from beingh0.data.loader import ShardDataset
from beingh0.data.synth import SynthConfig, synth_dataset
from beingh0.data.tokenize import IDS_FOLDER, MotionIds, tokenize_dataset, tokenizer_fingerprint


def _tokenizer(seed=0):
    from beingh0.tokenizer.config import TokenizerConfig
    from beingh0.tokenizer.model import MotionTokenizer

    torch.manual_seed(seed)
    tok = MotionTokenizer(TokenizerConfig.preset("tiny")).eval()
    with torch.no_grad():  # distinct codebooks per seed, so two tokenizers give different ids
        for q in tok.quantizers().values():
            q.codebooks.copy_(torch.randn_like(q.codebooks))
    return tok


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("tokenize") / "ds"
    # 3 motion-only episodes of 3 s, one per shard: 3 shards, 18 windows
    synth_dataset(root, 3, SynthConfig(seconds=3.0, frames=False), seed=5, progress=False, episodes_per_shard=1)
    return root


def test_round_trip_equals_direct_encode(folder, tmp_path):
    import shutil

    root = tmp_path / "ds"
    shutil.copytree(folder, root)
    tok = _tokenizer()
    r = tokenize_dataset(root, tok, batch_size=5, progress=False)
    assert r["encoded"] == 3 and r["skipped"] == 0 and r["fingerprint"] == tokenizer_fingerprint(tok)
    ids = MotionIds(root)
    ds = ShardDataset(root, kind="motion", reference="first")
    assert r["windows"] == len(ds) == 18
    for i in range(len(ds)):
        s = ds[i]
        row = ids.get(s["episode"], s["hand"])[s["window_start"] // 15]
        assert (row >= 0).all()
        # the tokenizer's own path: features of the window in its first frame -> encode_features
        n = int(s["mask"].sum())
        assert s["mask"][:n].all()
        direct = tok.encode_features(s["features"][:n].double())[0]
        assert torch.equal(row, direct), (s["episode"], s["hand"], s["window_start"])
    # rows of windows that are not usable hold -1; usable ones are exactly the index's windows
    idx = json.loads((root / "index.json").read_text())
    for sh in idx["shards"]:
        for ep in sh["episodes"]:
            for side, runs in ep["motion"]["windows"].items():
                a = ids.get(ep["key"], side)
                usable = np.zeros(a.shape[0], bool)
                for lo, hi in runs:
                    usable[lo:hi] = True
                assert ((a >= 0).all(1).numpy() == usable).all()
    man = json.loads((root / "manifest.json").read_text())
    assert man["motion_ids"][r["fingerprint"]]["windows"] == 18 and man["motion_ids"][r["fingerprint"]]["complete"]


def test_idempotent_resumable_and_stale(folder, tmp_path):
    import shutil

    root = tmp_path / "ds"
    shutil.copytree(folder, root)
    tok = _tokenizer()
    r1 = tokenize_dataset(root, tok, progress=False)
    sub = root / IDS_FOLDER / r1["fingerprint"]
    before = {p.name: p.read_bytes() for p in sub.iterdir()}
    r2 = tokenize_dataset(root, tok, progress=False)
    assert r2["encoded"] == 0 and r2["skipped"] == 3
    assert {p.name: p.read_bytes() for p in sub.iterdir()} == before
    # an interrupted run: one shard's sidecar missing -> only that shard is encoded again, identically
    (sub / "shard-000001.safetensors").unlink()
    r3 = tokenize_dataset(root, tok, progress=False)
    assert r3["encoded"] == 1
    assert {p.name: p.read_bytes() for p in sub.iterdir()} == before
    # a second tokenizer: its own folder; the reader then needs to be told which
    tok2 = _tokenizer(1)
    r4 = tokenize_dataset(root, tok2, progress=False)
    assert r4["fingerprint"] != r1["fingerprint"]
    with pytest.raises(UserError, match="2 tokenizers"):
        MotionIds(root)
    key = json.loads((root / "index.json").read_text())["shards"][0]["episodes"][0]["key"]
    assert not torch.equal(MotionIds(root, tok).get(key, "right"), MotionIds(root, tok2).get(key, "right"))
    # a rebuilt shard (other sha256) makes the ids stale: an error that says to re-tokenize
    idx = json.loads((root / "index.json").read_text())
    idx["shards"][0]["sha256"] = "0" * 64
    (root / "index.json").write_text(json.dumps(idx))
    with pytest.raises(UserError, match="rebuilt"):
        MotionIds(root, tok)
    assert tokenize_dataset(root, tok, progress=False)["encoded"] == 1  # and re-tokenizing fixes it
    MotionIds(root, tok)


def test_missing_ids_is_a_user_error(folder):
    with pytest.raises(UserError, match="data tokenize"):
        MotionIds(folder, "0123456789abcdef")
