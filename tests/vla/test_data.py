"""The pretraining dataset: labels only on targets (and the targets are the sidecar's motion ids),
images where there are frames, packing equal to padding, exact resume through ResumableLoader."""
import pytest
import torch

from beingh0.data.instructions import MotionRef, motion_blocks, parse_placeholders
from beingh0.data.loader import ResumableLoader
from beingh0.data.synth import SynthConfig, synth_dataset
from beingh0.data.tokenize import MotionIds, tokenize_dataset
from beingh0.vla.data import DataConfig, PretrainCollator, PretrainDataset, target_counts
from beingh0.vla.loss import LossConfig, pretrain_loss
from beingh0.vla.model import VLA
from beingh0.vla.processor import IGNORE_INDEX
from beingh0.vla.template import chat_prompt


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from beingh0.tokenizer.config import TokenizerConfig
    from beingh0.tokenizer.model import MotionTokenizer

    root = tmp_path_factory.mktemp("vla-data")
    torch.manual_seed(0)
    tok = MotionTokenizer(TokenizerConfig.preset("tiny")).eval()
    frames = root / "frames"
    motion = root / "motion"
    synth_dataset(frames, 2, SynthConfig(seconds=3.0, size=(32, 24), image_format="jpeg"), seed=7, progress=False)
    synth_dataset(motion, 1, SynthConfig(seconds=3.0, frames=False), seed=8, progress=False)
    for f in (frames, motion):
        tokenize_dataset(f, tok, progress=False)
    vla = VLA.from_preset("tiny", layout=tok.layout, seed=0)
    return vla, tok, frames, motion


def test_labels_only_on_targets_and_equal_to_the_sidecar(setup):
    vla, tok, frames, motion = setup
    proc = vla.processor()
    ds = PretrainDataset([frames, motion], proc, DataConfig(text_only=0.3), seed=0)
    tasks = {it["sample"]["task"] for it in ds.items}
    assert tasks == {"generation", "translation", "prediction"}
    im_end = proc.tokenizer.convert_tokens_to_ids("<|im_end|>")
    seen_image = seen_plain = 0
    for i in range(len(ds)):
        it, out = ds.items[i], ds[i]
        s = it["sample"]
        ids, lab = out["input_ids"], out["labels"]
        t = lab != IGNORE_INDEX
        # the target is one contiguous run at the end: the response and its closing <|im_end|>
        first = int(t.nonzero()[0])
        assert t[first:].all() and not t[:first].any() and lab[-1] == im_end
        assert torch.equal(lab[t], ids[t])
        # nothing of the prompt is a target: the context ends with the assistant header
        head = proc.text_ids(chat_prompt("x", proc.system).split("x")[-1])
        assert torch.equal(ids[first - len(head):first], head)
        assert not (lab == vla.config.image_token_id).any()
        # motion targets are the sidecar's ids of the right windows, block by block
        refs = [r for r in parse_placeholders(s["response"]) if isinstance(r, MotionRef)]
        ids_file = MotionIds(ds.folders[it["folder"]])
        key = ds.indexes[it["folder"]].refs[it["episode"]].key
        want = [ids_file.get(key, h)[int(s["t0"]) + sec] for r in refs for sec, h in motion_blocks(r)]
        got = lab[t][vla.vocab.is_motion(lab[t])]
        if want:
            assert torch.equal(vla.vocab.to_motion(got), torch.cat(want))
        else:
            assert got.numel() == 0 and s["task"] == "translation"
        if out["pixel_values"] is not None:
            seen_image += 1
            assert it["frames"] and int((ids == vla.config.image_token_id).sum()) == proc.tokens_per_tile * out["num_tiles"]
        else:
            seen_plain += 1
            assert not (ids == vla.config.image_token_id).any()
            assert it["frames"] is False or not ds.uses_image(i)
    assert seen_image and seen_plain
    # the motion-only folder's samples never carry an image
    assert all(not ds.uses_image(i) for i, it in enumerate(ds.items) if it["folder"] == 1)
    counts = target_counts(ds, vla.vocab.stop)
    assert counts.sum() == sum(int((ds[i]["labels"] != IGNORE_INDEX).sum()) for i in range(len(ds)))


def test_packed_equals_padded_and_exact_resume(setup):
    vla, tok, frames, motion = setup
    proc = vla.processor()
    ds = PretrainDataset([frames], proc, DataConfig(), seed=0)
    items = ds.__getitems__(list(range(5)))
    rng = (vla.vocab.offset, vla.vocab.offset + vla.vocab.num_motion)
    m = vla.model.eval()
    with torch.no_grad():
        padded, mp = pretrain_loss(m, PretrainCollator(proc)(items), LossConfig(), motion_range=rng)
        packed_b = PretrainCollator(proc, pack=True, seq_len=sum(int(it["input_ids"].numel()) for it in items) + 7)(items)
        packed, mk = pretrain_loss(m, packed_b, LossConfig(), motion_range=rng)
    assert packed_b["input_ids"].shape[0] < len(items)  # really packed
    assert mp["targets"] == mk["targets"] and mp["tokens"] == mk["tokens"]
    torch.testing.assert_close(packed, padded, rtol=1e-5, atol=1e-5)

    def loader():
        return ResumableLoader(ds, batch_size=3, seed=0, collate_fn=PretrainCollator(proc), generator=torch.Generator())

    full = [b["index"].tolist() for _, b in zip(range(6), _cycle(loader()))]
    a = loader()
    it = iter(a)
    first = [next(it)["index"].tolist() for _ in range(2)]
    state = a.state_dict()
    b = loader()
    b.load_state_dict(state)
    rest = [x["index"].tolist() for _, x in zip(range(4), _cycle(b))]
    assert first + rest == full
    x = loader()
    x.load_state_dict(state)
    assert torch.equal(next(iter(x))["input_ids"], next(iter(_skip(loader(), 2)))["input_ids"])


def _cycle(loader):
    while True:
        yield from loader


def _skip(loader, n):
    it = iter(loader)
    for _ in range(n):
        next(it)
    return it
