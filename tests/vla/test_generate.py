"""Decoding (beingh0.vla.generate, .logits, .blocks): processors against references, KV cache vs none,
left padding vs one by one, seeds, lenient parsing, soft feedback, window chaining in float64."""
import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from beingh0.motion import CanonicalFrame
from beingh0.tokenizer import MotionTokenizer, TokenizerConfig
from beingh0.vla.blocks import chain_windows, decode_hands, parse_blocks
from beingh0.vla.generate import (
    GenerationConfig,
    block_slots,
    generate,
    make_prompt,
    prompt_from_dataset,
    prompt_from_sample,
    requantize_average,
)
from beingh0.vla.logits import BlockFormatLogitsProcessor, block_allowed_reference
from beingh0.vla.processor import IGNORE_INDEX

from .conftest import random_motion


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: per-op overhead; 2 threads on a shared CPU are slower
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def motion_tok():
    torch.manual_seed(0)
    return MotionTokenizer(TokenizerConfig.preset("tiny")).eval()


@pytest.fixture(scope="module")
def small_vla():
    """The tiny VLA with an 8-token block layout (2 parts x 2 steps x 2 layers, 8 codes): fast loops."""
    from beingh0.tokenizer.layout import TokenLayout
    from beingh0.vla.model import VLA

    return VLA.from_preset("tiny", seed=0, layout=TokenLayout(parts=2, groups=1, steps=2, layers=2, codes=8))


@pytest.fixture(scope="module")
def tok_vla(motion_tok):
    """The tiny VLA with the tiny motion tokenizer's layout (32 tokens per block)."""
    from beingh0.vla.model import VLA

    return VLA.from_preset("tiny", seed=0, layout=motion_tok.layout)


@pytest.fixture(scope="module")
def image():
    return (np.random.default_rng(0).random((70, 90, 3)) * 255).astype(np.uint8)


def _im_end(vla):
    return vla.tokenizer.convert_tokens_to_ids("<|im_end|>")


# ------------------------------------------------------------------------------ logits processors
def test_block_processor_matches_reference(small_vla):
    vocab = small_vla.vocab
    V = vocab.stop + 5
    eos = _im_end(small_vla)
    nb = [2, 1, 3]
    g = torch.Generator().manual_seed(0)
    proc = BlockFormatLogitsProcessor(vocab, nb, eos)
    P = 7
    L = vocab.block_len
    for step in [0, 1, 2, 17, L - 2, L - 1, L, L + 1, 2 * L - 1, 2 * L, 2 * L + 5, 3 * L]:
        proc.reset()
        proc(torch.zeros(3, P, dtype=torch.long), torch.zeros(3, V))  # remembers the prompt length
        scores = torch.randn(3, V, generator=g)
        out = proc(torch.zeros(3, P + step, dtype=torch.long), scores.clone())
        for b in range(3):
            want = block_allowed_reference(vocab, step, nb[b], eos, V)
            got = torch.isfinite(out[b]).nonzero()[:, 0].tolist()
            assert got == want, (step, b)
            assert torch.equal(out[b, want], scores[b, want])


def test_block_processor_inside_model_generate(small_vla):
    """The processor plugs into transformers' generate: 100 % valid blocks, then the end token."""
    p = make_prompt(small_vla, "wave", seconds=1, hands="both")
    eos = _im_end(small_vla)
    proc = BlockFormatLogitsProcessor(small_vla.vocab, len(p.slots), eos)
    n = len(p.slots) * small_vla.vocab.block_len + 1
    out = small_vla.model.generate(input_ids=p.input_ids[None], attention_mask=torch.ones(1, p.input_ids.numel(), dtype=torch.long),
                                   logits_processor=[proc], max_new_tokens=n, do_sample=False, eos_token_id=eos,
                                   pad_token_id=eos)
    new = out[0, p.input_ids.numel():]
    parse = parse_blocks(new, small_vla.vocab, len(p.slots), eos)
    assert bool(parse.valid.all()) and int(new[-1]) == eos
    ours = generate(small_vla, p, GenerationConfig(mode="block"))
    assert torch.equal(ours[0].token_ids, new)


# ------------------------------------------------------------------------------ lenient parsing
def test_parse_counts_invalid_blocks_and_never_raises(small_vla):
    v = small_vla.vocab
    lay = v.layout
    good = random_motion(lay, 1, seed=1)[0]
    eos = _im_end(small_vla)
    blk = lambda ids: [v.mot_start] + (ids + v.offset).tolist() + [v.mot_end]
    wrong = good.clone()
    wrong[0] = good[1]  # an id of layer 1 where the layout wants layer 0
    text = blk(good)
    text[5] = 7  # a text token inside
    seq = ([3, 4] + blk(good) + blk(good)[:-1] + text + blk(good[:-1]) + blk(wrong) + blk(good) + [eos] + blk(good))
    parse = parse_blocks(torch.tensor(seq), v, 7, eos)
    assert parse.valid.tolist() == [True, False, False, False, False, True, False]
    assert parse.reasons[1] == "not closed by </MOT>"
    assert parse.reasons[2] == "non-motion token inside"
    assert parse.reasons[3].startswith(f"{lay.tokens_per_block - 1} tokens")
    assert "wrong (part, layer)" in parse.reasons[4]
    assert parse.reasons[6] == "missing"  # the block after the end token does not count
    assert torch.equal(parse.blocks[0], good) and bool((parse.blocks[1:5] == -1).all())
    assert parse.found == 6 and parse.extra == 0 and parse.valid_rate == pytest.approx(2 / 7)
    # garbage of every kind: never raises
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        junk = torch.randint(0, v.stop, (300,), generator=g)
        junk[torch.randint(0, 300, (20,), generator=g)] = v.mot_start
        junk[torch.randint(0, 300, (20,), generator=g)] = v.mot_end
        r = parse_blocks(junk, v, 4, eos)
        assert r.blocks.shape == (4, lay.tokens_per_block)
    r = parse_blocks(torch.tensor(blk(good) * 3), v, 2)
    assert r.extra == 1 and bool(r.valid.all())


def test_free_mode_reports_valid_rate_without_raising(small_vla, image):
    p = make_prompt(small_vla, "pick up the cup", image=image, seconds=1, hands="right")
    r = generate(small_vla, p, GenerationConfig(mode="free", greedy=False, seed=1, max_new_tokens=60))
    s = r[0]
    assert s.blocks.shape == (1, small_vla.vocab.layout.tokens_per_block) and 0.0 <= r.valid_rate <= 1.0
    assert s.valid.numel() == 1 and len(s.parse.reasons) == 1


# ------------------------------------------------------------------------------ generation loop
def test_block_mode_is_fully_valid_with_random_weights(tiny_vla):
    """Paper layout (128 tokens per block), random weights, sampling: every block valid."""
    p = make_prompt(tiny_vla, "open the drawer", seconds=1, hands="left")
    r = generate(tiny_vla, p, GenerationConfig(mode="block", greedy=False, temperature=2.0, seed=0))
    s = r[0]
    assert r.valid_rate == 1.0 and s.blocks.shape == (1, 128)
    assert s.token_ids.numel() == tiny_vla.vocab.block_len + 1 and int(s.token_ids[-1]) == _im_end(tiny_vla)
    tiny_vla.vocab.decode_blocks(s.token_ids[:-1])  # strict decoding agrees


@pytest.mark.parametrize("mode", ["free", "block"])
def test_kv_cache_gives_identical_tokens(small_vla, image, mode):
    p = make_prompt(small_vla, "pour the water", image=image, seconds=1, hands="both")
    cfg = {"mode": mode, "max_new_tokens": 40 if mode == "free" else None}
    a = generate(small_vla, p, GenerationConfig(use_cache=True, **cfg))
    b = generate(small_vla, p, GenerationConfig(use_cache=False, **cfg))
    assert torch.equal(a[0].token_ids, b[0].token_ids)
    assert a[0].token_ids.numel() > 20


def test_left_padded_batch_equals_one_by_one(small_vla, image):
    prompts = [make_prompt(small_vla, "pick up the small red cup on the left of the table", image=image, seconds=1, hands="right"),
               make_prompt(small_vla, "wave", seconds=2, hands="left"),
               make_prompt(small_vla, "push", image=image[:40], seconds=1, hands="both")]
    assert len({int(p.input_ids.numel()) for p in prompts}) == 3
    for mode in ("block", "free"):
        cfg = GenerationConfig(mode=mode, max_new_tokens=None if mode == "block" else 30)
        batch = generate(small_vla, prompts, cfg)
        for i, p in enumerate(prompts):
            one = generate(small_vla, p, cfg)
            assert torch.equal(batch[i].token_ids, one[0].token_ids), (mode, i)
            assert torch.equal(batch[i].blocks, one[0].blocks)
        if mode == "block":
            assert [len(s.slots) for s in batch.samples] == [1, 2, 2] and batch.valid_rate == 1.0


def test_seed_determinism(small_vla):
    p = make_prompt(small_vla, "grasp", seconds=1, hands="both")
    cfg = lambda s: GenerationConfig(mode="block", greedy=False, temperature=1.5, top_p=0.9, seed=s)
    a, b, c = (generate(small_vla, p, cfg(s))[0].token_ids for s in (3, 3, 4))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_soft_mode_feeds_back_requantized_blocks(tok_vla, motion_tok, image):
    small_vla = tok_vla
    lay = motion_tok.layout
    p = make_prompt(small_vla, "turn the knob", image=image, seconds=2, hands="right")
    gt = random_motion(lay, 2, seed=5)
    a = generate(small_vla, p, GenerationConfig(mode="soft"), motion_tokenizer=motion_tok, ground_truth=[gt])
    s = a[0]
    v = small_vla.vocab
    ctx_blocks = v.decode_blocks(s.token_ids[:-1])  # what the context saw
    assert torch.equal(ctx_blocks, s.fed_back)
    for k in range(2):
        want = requantize_average(motion_tok, s.blocks[k], gt[k])
        assert torch.equal(s.fed_back[k], want)
    assert not torch.equal(s.fed_back, s.blocks)  # the feedback changed the context
    # the rewritten cache matches a full re-run on the rewritten sequence
    b = generate(small_vla, p, GenerationConfig(mode="soft", use_cache=False), motion_tokenizer=motion_tok, ground_truth=[gt])
    assert torch.equal(b[0].token_ids, s.token_ids) and torch.equal(b[0].blocks, s.blocks)
    with pytest.raises(Exception, match="ground-truth"):
        generate(small_vla, p, GenerationConfig(mode="soft"), motion_tokenizer=motion_tok)


def test_prompt_from_sample_is_the_build_prefix(small_vla, image):
    proc = small_vla.processor()
    lay = small_vla.vocab.layout
    sample = {"prompt": "<IMAGE>\nMove both hands to wave. Duration: 2 seconds.", "response": "<MOTION:both:0-2s>",
              "task": "generation"}
    motion = {"left": random_motion(lay, 2, 1), "right": random_motion(lay, 2, 2)}
    p = prompt_from_sample(proc, sample, image=image, motion=motion)
    built = proc.build(sample, image=image, motion=motion)
    n = int((built["labels"] == IGNORE_INDEX).sum())
    assert torch.equal(p.input_ids, built["input_ids"][:n]) and p.slots == block_slots(2, "both")
    assert torch.equal(p.target, torch.stack([motion["left"][0], motion["right"][0], motion["left"][1], motion["right"][1]]))
    q = prompt_from_sample(proc, sample, image=image)
    assert torch.equal(q.input_ids, p.input_ids) and q.target is None


# ------------------------------------------------------------------------------ blocks -> MANO
def _ref_chain(windows, start_R, start_t, rule="extrapolate"):
    """float64 numpy reference of the chaining rule (scipy rotations)."""
    R_ref, t_ref = start_R, start_t
    out_R, out_t = [], []
    for w in windows:
        R = Rotation.from_rotvec(w["global_orient"].numpy()).as_matrix()
        t = w["trans"].numpy()
        Rc = np.einsum("ij,tjk->tik", R_ref, R)
        tc = t @ R_ref.T + t_ref
        out_R.append(Rc)
        out_t.append(tc)
        if rule == "hold":
            R_ref, t_ref = Rc[-1], tc[-1]
        else:
            R_ref, t_ref = Rc[-1] @ (Rc[-2].T @ Rc[-1]), 2 * tc[-1] - tc[-2]
    return np.concatenate(out_R), np.concatenate(out_t)


def _random_window(g, T=15):
    return {"global_orient": torch.randn(T, 3, generator=g, dtype=torch.float64) * 0.5,
            "hand_pose": torch.randn(T, 45, generator=g, dtype=torch.float64) * 0.3,
            "trans": torch.randn(T, 3, generator=g, dtype=torch.float64) * 0.05}


@pytest.mark.parametrize("rule", ["extrapolate", "hold"])
def test_chain_windows_matches_float64_reference(rule):
    g = torch.Generator().manual_seed(0)
    wins = [_random_window(g) for _ in range(3)]
    R0 = Rotation.from_rotvec([0.3, -0.2, 0.9]).as_matrix()
    t0 = np.array([0.1, -0.05, 0.6])
    got = chain_windows(wins, CanonicalFrame(torch.from_numpy(R0), torch.from_numpy(t0)), chain=rule)
    R, t = _ref_chain(wins, R0, t0, rule)
    np.testing.assert_allclose(Rotation.from_rotvec(got["global_orient"].numpy()).as_matrix(), R, atol=1e-10)
    np.testing.assert_allclose(got["trans"].numpy(), t, atol=1e-12)
    np.testing.assert_allclose(got["hand_pose"].numpy(), torch.cat([w["hand_pose"] for w in wins]).numpy())
    assert bool(got["valid"].all()) and got["trans"].shape == (45, 3)


def test_chain_recovers_a_continuous_motion_with_true_frames():
    """Windows canonicalised in their own first frame chain back exactly given the true frames, and the
    extrapolation rule follows a constant-velocity motion exactly."""
    from beingh0.motion import canonicalize

    T = 45
    k = torch.arange(T, dtype=torch.float64)[:, None]
    rot = Rotation.from_rotvec(k.numpy() * [0.0, 0.0, 0.02]) * Rotation.from_rotvec([0.2, 0.1, -0.3])  # constant rate
    motion = {"global_orient": torch.from_numpy(rot.as_rotvec()),
              "hand_pose": torch.zeros(T, 45, dtype=torch.float64),
              "trans": torch.tensor([0.0, 0.1, 0.5], dtype=torch.float64) + k * torch.tensor([0.003, -0.001, 0.002], dtype=torch.float64)}
    wins, frames = [], []
    for w in range(3):
        part = {key: v[15 * w:15 * w + 15] for key, v in motion.items()}
        c, f = canonicalize(part)
        wins.append(c)
        frames.append(f)
    for kw in ({"frames": frames}, {}):
        got = chain_windows(wins, frames[0], **kw)  # rotation about z at constant rate: extrapolation is exact
        np.testing.assert_allclose(got["trans"].numpy(), motion["trans"].numpy(), atol=1e-12)
        np.testing.assert_allclose(Rotation.from_rotvec(got["global_orient"].numpy()).as_matrix(),
                                   Rotation.from_rotvec(motion["global_orient"].numpy()).as_matrix(), atol=1e-12)


def test_decode_hands_left_right_and_invalid(motion_tok):
    lay = motion_tok.layout
    blocks = random_motion(lay, 4, seed=3)
    blocks[2] = -1  # second 1, left: invalid
    slots = block_slots(2, "both")
    start = {"left": {"global_orient": [0.1, 0.2, 0.3], "trans": [-0.1, 0.0, 0.5]},
             "right": {"global_orient": [0.0, -0.4, 0.2], "trans": [0.1, 0.05, 0.45]}}
    out = decode_hands(blocks, slots, motion_tok, start=start)
    assert set(out) == {"left", "right"} and out["right"]["trans"].shape == (30, 3)
    assert bool(out["right"]["valid"].all()) and out["left"]["valid"].tolist() == [True] * 15 + [False] * 15
    assert bool(torch.isnan(out["left"]["trans"][15:]).all())
    # reference: right hand = float64 chain of the tokenizer's windows from the start pose
    from beingh0.motion import decode_features

    feats = motion_tok.decode_features(blocks[[1, 3]]).reshape(2, 15, -1)
    wins = [decode_features(f, motion_tok.spec) for f in feats]
    R, t = _ref_chain(wins, Rotation.from_rotvec(start["right"]["global_orient"]).as_matrix(), np.array(start["right"]["trans"]))
    np.testing.assert_allclose(out["right"]["trans"].numpy(), t, atol=1e-10)
    np.testing.assert_allclose(Rotation.from_rotvec(out["right"]["global_orient"].numpy()).as_matrix(), R, atol=1e-9)
    # left hand: chained in the mirrored (right) convention, mirrored back: x flips, (x, -y, -z) rotations
    w0 = decode_features(motion_tok.decode_features(blocks[[0]]), motion_tok.spec)
    M = np.diag([-1.0, 1.0, 1.0])
    s_go = np.array(start["left"]["global_orient"]) * np.array([1, -1, -1])
    Rr, tr = _ref_chain([w0], Rotation.from_rotvec(s_go).as_matrix(), M @ np.array(start["left"]["trans"]))
    np.testing.assert_allclose(out["left"]["trans"][:15].numpy(), tr @ M, atol=1e-10)
    np.testing.assert_allclose(Rotation.from_rotvec(out["left"]["global_orient"][:15].numpy()).as_matrix(),
                               M @ Rr @ M, atol=1e-9)


# ------------------------------------------------------------------------------ command line
def test_cli_bad_input_is_one_line(tmp_path, capsys, image):
    from PIL import Image

    from beingh0.cli.main import main

    img = tmp_path / "scene.png"
    Image.fromarray(image).save(img)
    cases = [([str(tmp_path / "missing.png"), "wave", "--checkpoint", str(tmp_path)], "does not exist"),
             ([str(img), "wave", "--checkpoint", str(tmp_path / "nowhere")], "checkpoint"),
             ([str(img), "wave", "--checkpoint", str(tmp_path)], "config.json")]
    for args, needle in cases:
        assert main(["generate", *args, "--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("beingh0: error:") and needle in err and "\n" not in err


def test_cli_generates_npz_strip_and_video_from_a_run_folder(tmp_path, capsys, tok_vla, motion_tok, image):
    from PIL import Image

    from beingh0.cli.main import main
    from beingh0.tokenizer import save_tokenizer

    run = tmp_path / "run"
    tok_vla.save_pretrained(run / "model")
    save_tokenizer(motion_tok, run / "motion_tokenizer")
    img = tmp_path / "scene.png"
    Image.fromarray(image).save(img)
    out = tmp_path / "gen"
    assert main(["generate", str(img), "pick up the cup", "--checkpoint", str(run), "--seconds", "1", "--hands", "right",
                 "--out", str(out)]) == 0
    assert "valid blocks 100.0 %" in capsys.readouterr().out
    z = np.load(out / "motion.npz")
    assert z["right_trans"].shape == (15, 3) and z["blocks"].shape == (1, motion_tok.layout.tokens_per_block)
    assert bool(z["valid"].all()) and np.isfinite(z["right_hand_pose"]).all()
    assert (out / "strip.png").stat().st_size > 0 and (out / "motion.mp4").stat().st_size > 0


def test_prompt_from_dataset_carries_target_and_start(tmp_path, motion_tok, tok_vla):
    from beingh0.data.synth import SynthConfig, synth_dataset
    from beingh0.data.tokenize import tokenize_dataset
    from beingh0.vla.data import DataConfig, PretrainDataset

    root = tmp_path / "ds"
    synth_dataset(root, 1, SynthConfig(seconds=3.0, size=(32, 24), image_format="jpeg"), seed=7, progress=False)
    tokenize_dataset(root, motion_tok, progress=False)
    ds = PretrainDataset(root, tok_vla.processor(), DataConfig(tasks=("generation", "prediction"), text_only=0.0), seed=0)
    seen = set()
    for i, it in enumerate(ds.items):
        task = it["sample"]["task"]
        if task in seen:
            continue
        seen.add(task)
        p = prompt_from_dataset(ds, i)
        built = ds.build(i)
        n = int((built["labels"] == IGNORE_INDEX).sum())
        assert torch.equal(p.input_ids, built["input_ids"][:n]) and p.pixel_values is not None
        motion = ds.motion(it)
        assert torch.equal(p.target, torch.stack([motion[h][s] for s, h in p.slots]))
        ep = ds._episode(it["folder"], it["episode"])
        s0 = min(s for s, _ in p.slots)
        for h, pose in p.start.items():
            f = round((it["sample"]["t0"] + s0) * ep.fps)
            np.testing.assert_allclose(pose["trans"].numpy(), ep.hands[h].trans[f], atol=1e-6)
    assert seen == {"generation", "prediction"}
    r = generate(tok_vla, p, GenerationConfig(mode="soft"), motion_tokenizer=motion_tok)
    assert r.valid_rate == 1.0 and set(r[0].mano) == {h for _, h in p.slots}


def test_bench_generate_small_and_tokenizer_less_models(tmp_path, small_vla):
    import json

    from beingh0.benchmark.generate import run_generate_bench
    from beingh0.vla.model import VLA

    path = tmp_path / "gen.json"
    recs = run_generate_bench(config="tiny", seconds=1, hands="both", repeats=1, json_path=path, layout=small_vla.vocab.layout)
    assert [r["impl"] for r in recs] == ["no_cache", "kv_cache", "hf_generate"]
    assert all(r["same_tokens_as_kv_cache"] in (None, True) for r in recs) and recs[1]["valid_rate"] == 1.0
    assert recs[1]["motion_tokens_per_s"] > 0 and recs[1]["time_to_first_block_s"] > 0
    assert json.loads(path.read_text())[0]["device_name"].startswith("cpu")
    # a speed-run model without a text tokenizer decodes with the config's end token
    bare = VLA(small_vla.model, None, small_vla.vocab)
    p = make_prompt(small_vla, "wave", seconds=1, hands="both")
    a, b = generate(small_vla, p, GenerationConfig()), generate(bare, p, GenerationConfig())
    assert torch.equal(a[0].token_ids, b[0].token_ids) and b[0].text == ""
