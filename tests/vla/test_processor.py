"""Training sequences: chat template, image placeholders, motion blocks, labels only on the targets."""
import numpy as np
import pytest
import torch

from beingh0.core.errors import UserValueError
from beingh0.data.instructions import MotionRef, instruction_samples, parse_placeholders
from beingh0.vla.processor import IGNORE_INDEX, without_image
from beingh0.vla.template import SYSTEM_PROMPTS, chat_prompt

from .conftest import random_motion

EPISODE = {"key": "ep0", "source": "synth", "hands": ["left", "right"], "duration": 4.0,
           "text": {"instruction": "Pick up the red cup", "summary": "The right hand lifts the red cup",
                    "per_hand": {"right": "lift the red cup"}, "segments": []}}


@pytest.fixture(scope="module")
def proc(tiny_vla):
    return tiny_vla.processor()


@pytest.fixture(scope="module")
def samples():
    out = {}
    for s in instruction_samples(EPISODE, seed=0):
        out.setdefault((s["task"], s["hand"]), s)
    return out


@pytest.fixture(scope="module")
def motion(tiny_vla):
    L = tiny_vla.vocab.layout
    return {"left": random_motion(L, 4, seed=1), "right": random_motion(L, 4, seed=2)}


def image(h=70, w=150, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def target_span(out):
    lab = out["labels"]
    idx = (lab != IGNORE_INDEX).nonzero().flatten()
    assert idx.numel() > 0
    start = int(idx[0])
    assert torch.equal(idx, torch.arange(start, lab.numel())), "the target is one contiguous span at the end"
    assert torch.equal(lab[start:], out["input_ids"][start:])
    return start


def expected_blocks(vocab, motion, hands, seconds):
    return torch.cat([vocab.encode_blocks(motion[h][s][None]).reshape(-1) for s in seconds for h in hands])


def test_chat_template_text():
    assert chat_prompt("hi", system="sys") == "<|im_start|>system\nsys<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    assert chat_prompt("hi", system=None) == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    assert SYSTEM_PROMPTS["being_h0"] in chat_prompt("hi")


def test_visual_grounded_generation(proc, samples, motion, tiny_vla):
    s = samples[("generation", "both")]
    out = proc.build(s, image=image(), motion=motion)
    ids, v = out["input_ids"], tiny_vla.vocab
    tiles = out["num_tiles"]
    assert out["pixel_values"].shape == (tiles, 3, 64, 64) and tiles > 1
    assert int((ids == proc.image_token_id).sum()) == 16 * tiles
    start = target_span(out)
    d = s["duration"]
    want = torch.cat([expected_blocks(v, motion, ("left", "right"), range(d)), torch.tensor([proc._im_end])])
    assert torch.equal(ids[start:], want)  # second-major, left before right, then <|im_end|>
    assert not bool(v.is_motion(ids[:start]).any())  # no motion in the prompt
    text = tiny_vla.tokenizer.decode(ids[:start])
    assert text.startswith("<|im_start|>system\n") and text.endswith("<|im_end|>\n<|im_start|>assistant\n")
    assert "<img><IMG_CONTEXT>" in text and "</img>\n" in text


def test_contextual_generation_labels_only_the_future(proc, samples, motion, tiny_vla):
    s = samples[("prediction", "both")]
    out = proc.build(s, image=image(seed=1), motion=motion)
    ids, v = out["input_ids"], tiny_vla.vocab
    start = target_span(out)
    (hist,) = [r for r in parse_placeholders(s["prompt"]) if isinstance(r, MotionRef)]
    (fut,) = parse_placeholders(s["response"])
    a, b, fa, fb = hist.start, hist.stop, fut.start, fut.stop
    assert a == 0 and fa == b and fb > fa
    assert torch.equal(ids[start:-1], expected_blocks(v, motion, ("left", "right"), range(fa, fb)))
    prompt_motion = ids[:start][v.is_motion(ids[:start]) | (ids[:start] == v.mot_start) | (ids[:start] == v.mot_end)]
    assert torch.equal(prompt_motion, expected_blocks(v, motion, ("left", "right"), range(a, b)))


def test_motion_to_text(proc, samples, motion, tiny_vla):
    s = samples[("translation", "both")]
    out = proc.build(s, image=image(seed=2), motion=motion)
    ids, v = out["input_ids"], tiny_vla.vocab
    start = target_span(out)
    assert tiny_vla.tokenizer.decode(ids[start:]) == s["response"] + "<|im_end|>"
    assert not bool(v.is_motion(ids[start:]).any())
    assert int(v.is_motion(ids[:start]).sum()) == 128 * 2 * s["duration"]


def test_text_to_motion_without_image(proc, samples, motion, tiny_vla):
    s = without_image(samples[("generation", "right")])
    out = proc.build(s, motion=motion)
    ids = out["input_ids"]
    assert out["pixel_values"] is None and not bool((ids == proc.image_token_id).any())
    start = target_span(out)
    assert torch.equal(ids[start:-1], expected_blocks(tiny_vla.vocab, motion, ("right",), range(s["duration"])))


def test_collate_pads_labels_with_ignore(proc, samples, motion):
    a = proc.build(samples[("generation", "right")], image=image(seed=3), motion=motion)
    b = proc.build(samples[("translation", "both")], image=image(40, 40, seed=4), motion=motion)
    batch = proc.collate([a, b])
    L = max(a["input_ids"].numel(), b["input_ids"].numel())
    assert batch["input_ids"].shape == batch["labels"].shape == batch["attention_mask"].shape == (2, L)
    short = 0 if a["input_ids"].numel() < L else 1
    n = [a, b][short]["input_ids"].numel()
    assert (batch["labels"][short, n:] == IGNORE_INDEX).all() and (batch["attention_mask"][short, n:] == 0).all()
    assert batch["pixel_values"].shape[0] == a["num_tiles"] + b["num_tiles"]


def test_user_errors(proc, samples, motion):
    s = samples[("generation", "both")]
    with pytest.raises(UserValueError, match="no image was given"):
        proc.build(s, motion=motion)
    with pytest.raises(UserValueError, match="needs the left hand"):
        proc.build(s, image=image(), motion={"right": motion["right"]})
    with pytest.raises(UserValueError, match="needs second"):
        proc.build(s, image=image(), motion={"left": motion["left"][:1], "right": motion["right"][:1]})
    with pytest.raises(UserValueError, match="malformed placeholder"):
        proc.build({"prompt": "<MOTION:up:0-1s>", "response": "x"}, motion=motion)
