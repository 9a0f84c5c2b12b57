"""The VLA model: forward loss over target tokens only, save/load round trip, and loading errors that
name the tensors instead of initialising them at random."""
import json
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from transformers import AutoTokenizer, InternVLForConditionalGeneration

from beingh0.core.errors import UserFileError, UserValueError
from beingh0.data.instructions import instruction_samples
from beingh0.vla.config import vla_config
from beingh0.vla.model import META_FILE, VLA
from beingh0.vla.processor import IGNORE_INDEX
from beingh0.vla.text_tokenizer import tiny_tokenizer
from beingh0.vla.vocab import paper_layout

from .conftest import random_motion
from .test_processor import EPISODE


@pytest.fixture(scope="module")
def batch(tiny_vla):
    proc = tiny_vla.processor()
    L = tiny_vla.vocab.layout
    motion = {"left": random_motion(L, 2, 5), "right": random_motion(L, 2, 6)}
    by_task = {(s["task"], s["hand"]): s for s in instruction_samples(EPISODE, seed=0)}
    rng = np.random.default_rng(0)
    gen = dict(by_task[("generation", "right")], response="<MOTION:right:0-1s>")  # one block keeps it short
    a = proc.build(gen, image=rng.integers(0, 256, (70, 150, 3), dtype=np.uint8), motion=motion)
    trans = dict(by_task[("translation", "both")], prompt="<IMAGE>\n<MOTION:left:0-1s>\nDescribe it.")
    b = proc.build(trans, image=rng.integers(0, 256, (40, 40, 3), dtype=np.uint8), motion=motion)
    return proc.collate([a, b])


@pytest.fixture(scope="module")
def saved(tiny_vla, tmp_path_factory):
    return tiny_vla.save_pretrained(tmp_path_factory.mktemp("tiny") / "ckpt")


def test_forward_loss_is_mean_over_target_tokens(tiny_vla, batch):
    m = tiny_vla.model.eval()
    with torch.no_grad():
        out = m(**batch)
    B, L = batch["input_ids"].shape
    assert out.logits.shape == (B, L, tiny_vla.vocab.stop)
    assert torch.isfinite(out.loss)
    logits, labels = out.logits[:, :-1].double(), batch["labels"][:, 1:]
    keep = labels != IGNORE_INDEX
    per_token = F.cross_entropy(logits[keep], labels[keep], reduction="none")
    torch.testing.assert_close(out.loss.double(), per_token.mean(), rtol=1e-5, atol=1e-6)
    # averaging over the ignored positions too (the official release's bug) would give another number
    assert keep.float().mean() < 0.9
    assert not torch.allclose(per_token.sum() / keep.numel(), per_token.mean())


def test_loss_ignores_everything_but_targets(tiny_vla, batch):
    """With one labelled token the loss is exactly that token's cross-entropy."""
    m = tiny_vla.model.eval()
    labels = batch["labels"].clone()
    pos = (labels != IGNORE_INDEX).nonzero()[3]
    one = torch.full_like(labels, IGNORE_INDEX)
    one[pos[0], pos[1]] = labels[pos[0], pos[1]]
    with torch.no_grad():
        out = m(**dict(batch, labels=one))
    want = F.cross_entropy(out.logits[pos[0], pos[1] - 1][None].double(), labels[pos[0], pos[1]][None])
    torch.testing.assert_close(out.loss.double(), want, rtol=1e-5, atol=1e-6)


def test_save_load_round_trip(tiny_vla, saved, batch):
    names = {p.name for p in saved.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", META_FILE} <= names
    meta = json.loads((saved / META_FILE).read_text())
    assert meta["motion_vocab"]["offset"] == tiny_vla.vocab.offset and meta["preset"] == "tiny"
    tok = AutoTokenizer.from_pretrained(saved)  # like any checkpoint's tokenizer
    assert len(tok) == tiny_vla.vocab.stop and tok.convert_tokens_to_ids("<IMG_CONTEXT>") == 5
    loaded = VLA.from_pretrained(saved)
    assert loaded.vocab == tiny_vla.vocab and loaded.preset == "tiny" and loaded.max_tiles == tiny_vla.max_tiles
    assert loaded.config._attn_implementation == "sdpa"
    with torch.no_grad():
        a = tiny_vla.model.eval()(**batch).logits
        b = loaded.model.eval()(**batch).logits
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def _corrupt(saved, tmp_path, edit):
    d = tmp_path / "bad"
    shutil.copytree(saved, d)
    sd = load_file(d / "model.safetensors")
    edit(sd)
    save_file(sd, d / "model.safetensors", metadata={"format": "pt"})
    return d


def _key(sd, suffix):
    (k,) = [k for k in sd if k.endswith(suffix)]
    return k


def test_missing_tensor_is_named(saved, tmp_path):
    d = _corrupt(saved, tmp_path, lambda sd: sd.pop(_key(sd, "layers.1.mlp.down_proj.weight")))
    with pytest.raises(UserValueError, match=r"missing .*layers\.1\.mlp\.down_proj\.weight.*refusing"):
        VLA.from_pretrained(d)


def test_missing_output_head_is_named(saved, tmp_path):
    d = _corrupt(saved, tmp_path, lambda sd: sd.pop(_key(sd, "lm_head.weight")))
    with pytest.raises(UserValueError, match=r"missing .*lm_head\.weight"):
        VLA.from_pretrained(d)


def test_wrong_shape_is_named(saved, tmp_path):
    def edit(sd):
        k = _key(sd, "multi_modal_projector.linear_1.weight")
        sd[k] = torch.zeros(3, 5)

    d = _corrupt(saved, tmp_path, edit)
    with pytest.raises(UserValueError, match=r"wrong shape .*multi_modal_projector\.linear_1\.weight \(3, 5\)"):
        VLA.from_pretrained(d)


def test_unexpected_tensor_is_named(saved, tmp_path):
    d = _corrupt(saved, tmp_path, lambda sd: sd.__setitem__("stray.weight", torch.zeros(2)))
    with pytest.raises(UserValueError, match=r"unexpected stray\.weight"):
        VLA.from_pretrained(d)


def test_missing_files(saved, tmp_path):
    with pytest.raises(UserFileError, match="does not exist"):
        VLA.from_pretrained(tmp_path / "nowhere")
    for name, match in (("model.safetensors", "no model.safetensors"), ("tokenizer.json", "no tokenizer"),
                        ("config.json", "no config.json")):
        d = tmp_path / f"no_{name}"
        shutil.copytree(saved, d)
        (d / name).unlink()
        with pytest.raises(UserFileError, match=match):
            VLA.from_pretrained(d)
    d = tmp_path / "orig"
    shutil.copytree(saved, d)
    cfg = json.loads((d / "config.json").read_text())
    (d / "config.json").write_text(json.dumps(dict(cfg, model_type="internvl_chat")))
    with pytest.raises(UserValueError, match="convert_internvl_weights_to_hf"):
        VLA.from_pretrained(d)


def test_plain_internvl_checkpoint_gets_the_motion_vocabulary(tmp_path):
    """A checkpoint without motion tokens (as InternVL3-*-hf): its weights are kept, motion rows added."""
    torch.manual_seed(1)
    base = InternVLForConditionalGeneration(vla_config("tiny"))
    tok = tiny_tokenizer()
    base.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    vla = VLA.from_pretrained(tmp_path)
    assert vla.vocab.offset == 1024 and vla.vocab.stop == 1024 + 8194 == len(vla.tokenizer)
    assert vla.vocab.layout == paper_layout()
    emb = vla.model.get_input_embeddings().weight
    assert torch.equal(emb[:1024], base.get_input_embeddings().weight)
    assert torch.equal(vla.model.lm_head.weight[:1024], base.lm_head.weight)
    assert emb.shape[0] == vla.model.lm_head.weight.shape[0] == 9218


def test_speed_run_build_without_tokenizer_on_meta():
    """The 1B architecture with motion rows, for random-init speed runs: no tokenizer, no memory."""
    vla = VLA.from_preset("1b", device="meta")
    assert vla.tokenizer is None and vla.vocab.offset == 151674 and vla.vocab.stop == 159868
    n = sum(p.numel() for p in vla.model.parameters())
    assert n == 938_193_024 + 2 * 8194 * 896
    with pytest.raises(UserValueError, match="no text tokenizer"):
        vla.processor()


def test_bf16_model_gets_bf16_tiles(batch):
    vla = VLA.from_preset("tiny", dtype=torch.bfloat16)
    proc = vla.processor()
    assert proc.out_dtype == torch.bfloat16
    out = proc.build({"prompt": "<IMAGE>\nhi", "response": "ok"}, image=np.zeros((64, 64, 3), np.uint8))
    assert out["pixel_values"].dtype == torch.bfloat16
    with torch.no_grad():
        assert torch.isfinite(vla.model(**proc.collate([out])).loss)
