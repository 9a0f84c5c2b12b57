"""Generating hand motion with the VLA: free, block-formatted and soft-formatted decoding (issue 11).

Entry point: :func:`generate` ``(vla, prompts, config, *, motion_tokenizer=None, ground_truth=None)
-> GenerationResult``. Prompts are :class:`GenerationPrompt` objects: the token ids of the chat turn up
to where the assistant starts to write (what :meth:`beingh0.vla.VLAProcessor.build` puts before the
target), the image tiles, and the (second, hand) slots of the motion blocks the answer should hold.
Make them with :func:`make_prompt` (an image + an instruction), :func:`prompt_from_sample` (an
instruction sample + its motion ids) or :func:`prompt_from_dataset` (an item of a
:class:`beingh0.vla.data.PretrainDataset`; carries the ground-truth ids and the start pose).

Modes (:class:`GenerationConfig` ``mode``):

* ``free``: no constraint; stops at ``<|im_end|>`` or ``max_new_tokens``. Blocks are parsed leniently
  (:func:`beingh0.vla.blocks.parse_blocks`): invalid blocks are counted (valid-generation rate).
* ``block``: :class:`beingh0.vla.logits.BlockFormatLogitsProcessor` -- exactly the prompt's number of
  blocks, each ``<MOT>`` + 128 ids of the right (part, layer) + ``</MOT>``, then ``<|im_end|>``.
* ``soft`` (evaluation; needs the ground-truth ids and a motion tokenizer): block-formatted, and after
  each block the predicted and the ground-truth block are decoded to MANO (each window in its own
  first-frame frame, right-hand convention), averaged (rotations by slerp at 1/2, translations
  linearly), re-quantized with the tokenizer and written back into the context in place of the
  prediction: the KV cache is cropped to the block's start and the new tokens re-fed, so every later
  token attends to the averaged block. The result's ``blocks`` are the model's own predictions;
  ``fed_back`` and ``token_ids`` hold what the context saw.

The loop (:func:`generate`): left-padded batch, prefill with the image, then one token per step
through a ``transformers.DynamicCache`` (``use_cache=False`` re-runs the whole sequence each step:
the reference the cached path must match token for token). Position ids follow the attention mask
(as ``model.generate`` does), so a left-padded row generates what it generates alone. Greedy or
sampling (temperature, top-p via transformers' warpers) from a ``torch.Generator`` seeded by
``config.seed``: the same seed gives the same output.
"""
from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..core.config import validate_config
from ..core.errors import UserValueError
from ..data.instructions import MotionRef, motion_blocks, parse_placeholders
from .blocks import BlockParse, decode_hands, parse_blocks
from .logits import BlockFormatLogitsProcessor
from .processor import IGNORE_INDEX, VLAProcessor, without_image
from .template import IM_END

__all__ = [
    "HANDS",
    "MODES",
    "GenerationConfig",
    "GenerationPrompt",
    "GenerationResult",
    "SampleOutput",
    "block_slots",
    "end_token_id",
    "generate",
    "left_pad",
    "make_prompt",
    "pad_token_id",
    "prompt_from_dataset",
    "prompt_from_sample",
    "requantize_average",
]

MODES = ("free", "block", "soft")
HANDS = ("left", "right", "both")


@dataclass(frozen=True)
class GenerationConfig:
    """How to decode (see the module docstring)."""

    mode: str = field(default="block", metadata={"choices": MODES})
    """Decoding mode: free (no constraint), block (block-formatted), soft (soft-formatted, needs ground truth)."""
    seconds: int = field(default=2, metadata={"ge": 1})
    """Seconds of motion when a prompt does not say (prompts from samples carry their own blocks)."""
    hands: str = field(default="both", metadata={"choices": HANDS})
    """Hands when a prompt does not say (blocks second-major, left before right)."""
    greedy: bool = True
    """Greedy decoding (argmax); off: sample with temperature and top_p."""
    temperature: float = field(default=1.0, metadata={"gt": 0.0})
    """Sampling temperature."""
    top_p: float = field(default=1.0, metadata={"gt": 0.0, "le": 1.0})
    """Nucleus sampling: keep the smallest set of tokens with this much probability."""
    seed: int = 0
    """Seeds the sampling generator (same seed, same output)."""
    use_cache: bool = True
    """KV cache (DynamicCache); off re-runs the whole sequence every step."""
    max_new_tokens: int | None = field(default=None, metadata={"ge": 1})
    """Token limit of the answer (None: the blocks' tokens + 1 in block/soft mode, + 32 in free mode)."""
    chain: str = field(default="extrapolate", metadata={"choices": ("extrapolate", "hold")})
    """How the per-second windows chain into one motion (beingh0.vla.blocks)."""

    def __post_init__(self):
        validate_config(self)


def block_slots(seconds: int, hands: str, start: int = 0) -> list[tuple[int, str]]:
    """The (second, hand) slots of ``seconds`` seconds of ``hands``: second-major, left before right."""
    if hands not in HANDS:
        raise UserValueError(f"hands must be one of {HANDS}, got {hands!r}")
    return motion_blocks(MotionRef(hands, start, start + seconds))


@dataclass
class GenerationPrompt:
    """One generation request.

    Attributes:
        input_ids: (L,) token ids up to and including ``<|im_start|>assistant\\n``.
        pixel_values: (tiles, 3, t, t) image tiles, or None.
        slots: (second, hand) of each expected block, in answer order (None: from the config).
        target: (len(slots), tokens_per_block) ground-truth motion ids, or None.
        start: ``{hand: {"global_orient": (3,), "trans": (3,)}}`` camera-frame pose at the first
            generated frame (for chaining the windows), or None.
        meta: anything the caller wants back (task, dataset index, ...).
    """

    input_ids: torch.Tensor
    pixel_values: torch.Tensor | None = None
    slots: list[tuple[int, str]] | None = None
    target: torch.Tensor | None = None
    start: dict | None = None
    meta: dict = field(default_factory=dict)


@dataclass
class SampleOutput:
    """The result of one prompt.

    Attributes:
        token_ids: (n,) the generated answer as the context saw it (end token included when reached).
        text: the answer's text without the motion tokens.
        slots: (second, hand) of each expected block.
        blocks: (len(slots), tokens_per_block) predicted motion ids, -1 rows for invalid blocks.
        valid: (len(slots),) bool.
        parse: the :class:`beingh0.vla.blocks.BlockParse` (reasons, extra blocks).
        fed_back: soft mode: (len(slots), tokens_per_block) the re-quantized blocks fed back.
        mano: ``{hand: {global_orient, hand_pose, trans, valid}}`` camera-frame float64 (with a tokenizer).
        meta: the prompt's meta.
    """

    token_ids: torch.Tensor
    text: str
    slots: list[tuple[int, str]]
    blocks: torch.Tensor
    valid: torch.Tensor
    parse: BlockParse
    fed_back: torch.Tensor | None = None
    mano: dict | None = None
    meta: dict = field(default_factory=dict)

    @property
    def valid_rate(self) -> float:
        return self.parse.valid_rate

    def hand_ids(self) -> dict[str, torch.Tensor]:
        """``{hand: (seconds, tokens_per_block)}`` predicted ids per hand in second order (-1 rows: invalid)."""
        out: dict[str, list] = {}
        for (s, h), b in sorted(zip(self.slots, self.blocks), key=lambda x: (x[0][1], x[0][0])):
            out.setdefault(h, []).append(b)
        return {h: torch.stack(v) for h, v in out.items()}


@dataclass
class GenerationResult:
    """Outputs per prompt plus timing: ``prefill_s`` (first forward), ``total_s``, ``steps`` (decoding
    steps), ``first_block_s`` (time until every row's first block was complete, None if none)."""

    samples: list[SampleOutput]
    config: GenerationConfig
    prefill_s: float = 0.0
    total_s: float = 0.0
    steps: int = 0
    first_block_s: float | None = None

    @property
    def valid_rate(self) -> float:
        """Valid blocks / expected blocks over all samples."""
        n = sum(s.valid.numel() for s in self.samples)
        return sum(int(s.valid.sum()) for s in self.samples) / n if n else 1.0

    @property
    def motion_tokens(self) -> int:
        """Motion tokens in all answers (what tokens/s benchmarks count)."""
        return sum(int(s.valid.sum()) * s.blocks.shape[1] for s in self.samples)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i) -> SampleOutput:
        return self.samples[i]


# ------------------------------------------------------------------------------------- prompts
def end_token_id(vla) -> int:
    """The token that ends an answer: ``<|im_end|>`` (the config's eos for a tokenizer-less model)."""
    if vla.tokenizer is None:  # a tokenizer-less speed-run model: the config's end token (<|im_end|> in InternVL3)
        return int(vla.config.text_config.eos_token_id)
    i = vla.tokenizer.convert_tokens_to_ids(IM_END)
    if i is None or i == vla.tokenizer.unk_token_id:
        raise UserValueError(f"the tokenizer has no {IM_END}; use the checkpoint's own tokenizer")
    return int(i)


def make_prompt(vla_or_processor, instruction: str, *, image=None, seconds: int = 2, hands: str = "both",
                pre=None, canvas_wh=None, template: int = 0, start: dict | None = None) -> GenerationPrompt:
    """A generation prompt from an instruction (``generation`` template ``template`` of
    :mod:`beingh0.data.instructions`, with the duration and hands filled in) and an optional image
    (uint8 (H, W, 3)); ``pre``/``canvas_wh``: the alignment folded into the tiling (as the pretraining
    data's images: :meth:`beingh0.vla.data.PretrainDataset.image`); ``start``: see :class:`GenerationPrompt`."""
    from ..data.instructions import TEMPLATES, duration_words, hand_words

    proc = vla_or_processor if isinstance(vla_or_processor, VLAProcessor) else vla_or_processor.processor()
    if not isinstance(instruction, str) or not instruction.strip():
        raise UserValueError("the instruction is empty; pass the task in words, e.g. \"pick up the cup\"")
    if not 0 <= template < len(TEMPLATES["generation"]):
        raise UserValueError(f"template must be in [0, {len(TEMPLATES['generation'])}), got {template}")
    text = instruction.strip().rstrip(".")
    tmpl = TEMPLATES["generation"][template]
    prompt = tmpl.format(instruction=text[:1].lower() + text[1:], duration=duration_words(seconds), hand=hand_words(hands))
    sample = {"prompt": prompt, "response": str(MotionRef(hands, 0, seconds)), "task": "generation"}
    if image is None:
        sample = without_image(sample)
    return prompt_from_sample(proc, sample, image=image, pre=pre, canvas_wh=canvas_wh, start=start)


def _split_built(built: dict) -> tuple[torch.Tensor, torch.Tensor]:
    ids, lab = built["input_ids"], built["labels"]
    ctx = int((lab == IGNORE_INDEX).nonzero().max()) + 1 if bool((lab == IGNORE_INDEX).any()) else 0
    return ids[:ctx], ids[ctx:]


def prompt_from_sample(processor: VLAProcessor, sample: Mapping[str, Any], *, image=None, motion=None, pre=None,
                       canvas_wh=None, start: dict | None = None, meta: dict | None = None) -> GenerationPrompt:
    """A prompt from an instruction sample (``{"prompt", "response", "task"}``): the processor's
    sequence up to the assistant's start, the response's motion slots and -- when ``motion`` (the
    sample's ids ``{hand: (seconds, 128)}``) is given -- the ground-truth blocks of the response."""
    refs = [r for r in parse_placeholders(sample["response"]) if isinstance(r, MotionRef)]
    slots = [sh for r in refs for sh in motion_blocks(r)]
    if motion is not None:
        built = processor.build(sample, image=image, motion=motion, pre=pre, canvas_wh=canvas_wh)
        ctx, target = _split_built(built)
        target_blocks = None
        if slots:
            tb = processor.vocab.block_len
            span = target[(target >= processor.vocab.offset) & (target < processor.vocab.stop)]
            target_blocks = processor.vocab.decode_blocks(span[:len(slots) * tb])
        pv = built["pixel_values"]
    else:
        # context only: build with an empty response (the placeholders need no ids)
        s = dict(sample)
        s["response"] = ""
        built = processor.build(s, image=image, pre=pre, canvas_wh=canvas_wh)
        ctx, _ = _split_built(built)
        target_blocks, pv = None, built["pixel_values"]
    m = {"task": sample.get("task"), **(meta or {})}
    return GenerationPrompt(ctx, pv, slots, target_blocks, start, m)


def prompt_from_dataset(dataset, i: int, *, image: bool | None = None, start: bool = True) -> GenerationPrompt:
    """A prompt for item ``i`` of a :class:`beingh0.vla.data.PretrainDataset`: context, image (when the
    item uses one; ``image=False`` forces text only), response slots, ground-truth blocks and -- with
    ``start`` -- each response hand's camera-frame pose at the first response second (from the episode's
    MANO track; the chaining start of :func:`beingh0.vla.blocks.decode_hands`)."""
    it = dataset.items[i]
    s = it["sample"]
    built = dataset.build(i, image=image)
    ctx, target = _split_built(built)
    proc = dataset.proc
    refs = [r for r in parse_placeholders(s["response"]) if isinstance(r, MotionRef)]
    slots = [sh for r in refs for sh in motion_blocks(r)]
    span = target[(target >= proc.vocab.offset) & (target < proc.vocab.stop)]
    tb = proc.vocab.block_len
    blocks = proc.vocab.decode_blocks(span[:len(slots) * tb]) if slots else None
    st = None
    if start and slots:
        try:
            ep = dataset._episode(it["folder"], it["episode"])
            st = {}
            first = min(sec for sec, _ in slots)
            for hand in sorted({h for _, h in slots}):
                tr = ep.hands[hand]
                f = int(min(tr.trans.shape[0] - 1, round((s["t0"] + first) * ep.fps)))
                st[hand] = {"global_orient": torch.as_tensor(tr.global_orient[f], dtype=torch.float64),
                            "trans": torch.as_tensor(tr.trans[f], dtype=torch.float64)}
        except (KeyError, AttributeError, IndexError):
            st = None
    return GenerationPrompt(ctx, built["pixel_values"], slots, blocks, st,
                            {"task": s.get("task"), "index": i, "episode": s.get("episode"), "t0": s.get("t0")})


# ------------------------------------------------------------------------------------- soft mode
@torch.no_grad()
def requantize_average(motion_tokenizer, predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Soft-formatted feedback of one block: decode both (tokens_per_block,) id rows to MANO (the
    window's own frame, right-hand convention), average (rotations: slerp at 1/2 per joint;
    translation: mean), re-encode with the tokenizer -> (tokens_per_block,) ids."""
    from ..motion import slerp_axis_angle
    from ..tokenizer.data import MotionClip

    p = motion_tokenizer.decode(predicted.reshape(1, -1).cpu())
    g = motion_tokenizer.decode(target.reshape(1, -1).cpu())
    T = p["global_orient"].shape[0]
    go = slerp_axis_angle(p["global_orient"], g["global_orient"], 0.5)
    hp = slerp_axis_angle(p["hand_pose"].reshape(T, 15, 3), g["hand_pose"].reshape(T, 15, 3), 0.5).reshape(T, 45)
    tr = 0.5 * (p["trans"] + g["trans"])
    ids, _ = motion_tokenizer.encode(MotionClip(go, hp, torch.zeros(10, dtype=torch.float64), tr, fps=15.0, side="right"))
    return ids[0].long()


# ------------------------------------------------------------------------------------- loop
def pad_token_id(vla) -> int:
    """Padding id: the processor's (tokenizer's pad, else ``<|im_end|>``), or the config's for a tokenizer-less model."""
    if vla.tokenizer is not None:
        return int(vla.processor().pad_token_id)
    pad = vla.config.text_config.pad_token_id
    return end_token_id(vla) if pad is None else int(pad)


def left_pad(prompts: Sequence[GenerationPrompt], pad: int):
    """Left-padded (input_ids (B, L), attention_mask (B, L), pixel_values of all prompts or None)."""
    L = max(int(p.input_ids.numel()) for p in prompts)
    B = len(prompts)
    ids = torch.full((B, L), pad, dtype=torch.long)
    mask = torch.zeros((B, L), dtype=torch.long)
    for b, p in enumerate(prompts):
        n = int(p.input_ids.numel())
        ids[b, L - n:], mask[b, L - n:] = p.input_ids.long(), 1
    pix = [p.pixel_values for p in prompts if p.pixel_values is not None]
    return ids, mask, (torch.cat(pix) if pix else None)


def _forward(model, ids, mask, pos, pixel_values, cache, past: int):
    """Logits (B, V) of the last position; feeds ``ids[:, past:]`` when a cache holds ``past`` tokens.
    ``pos``: position ids of ``ids`` (precomputed once per generation: no per-step work over the sequence)."""
    kw: dict[str, Any] = {"attention_mask": mask, "position_ids": pos[:, past:], "logits_to_keep": 1}
    if pixel_values is not None and past == 0:
        kw["pixel_values"] = pixel_values
    if cache is not None:
        out = model(input_ids=ids[:, past:], cache=cache, use_cache=True, **kw)
    else:
        out = model(input_ids=ids, use_cache=False, **kw)
    return out.logits[:, -1]


def _sampling(config: GenerationConfig):
    from transformers.generation.logits_process import TemperatureLogitsWarper, TopPLogitsWarper

    warp = []
    if not config.greedy:
        if config.temperature != 1.0:
            warp.append(TemperatureLogitsWarper(config.temperature))
        if config.top_p < 1.0:
            warp.append(TopPLogitsWarper(config.top_p))
    return warp


@torch.no_grad()
def generate(vla, prompts: GenerationPrompt | Sequence[GenerationPrompt], config: GenerationConfig = GenerationConfig(), *,
             motion_tokenizer=None, ground_truth: Sequence[torch.Tensor | None] | None = None,
             logits_processors: Sequence | None = None, progress=None) -> GenerationResult:
    """Generate the answers of ``prompts`` in one left-padded batch (module docstring).

    Args:
        vla: a :class:`beingh0.vla.VLA` (its model's device and dtype are used).
        prompts: one :class:`GenerationPrompt` or a list.
        config: :class:`GenerationConfig`.
        motion_tokenizer: a ``MotionTokenizer``: decodes each sample's blocks to camera-frame MANO
            (``SampleOutput.mano``); required for ``soft``.
        ground_truth: per prompt (len(slots), tokens_per_block) ids overriding ``prompt.target`` (soft).
        logits_processors: extra processors applied after the mode's constraint.
        progress: a callable ``progress(step, total)`` called after each step (e.g. a tqdm update).
    """
    if isinstance(prompts, GenerationPrompt):
        prompts = [prompts]
    prompts = list(prompts)
    if not prompts:
        raise UserValueError("generate needs at least one prompt")
    if not isinstance(config, GenerationConfig):
        raise TypeError(f"config must be a GenerationConfig, got {type(config).__name__}")
    vocab, model = vla.vocab, vla.model
    model.eval()
    eos = end_token_id(vla)
    pad = pad_token_id(vla)
    tb, L_blk = vocab.layout.tokens_per_block, vocab.block_len
    slots = [p.slots if p.slots is not None else block_slots(config.seconds, config.hands) for p in prompts]
    nb = torch.tensor([len(s) for s in slots])
    targets: list[torch.Tensor | None] = [
        (ground_truth[i] if ground_truth is not None else p.target) for i, p in enumerate(prompts)]
    if config.mode == "soft":
        if motion_tokenizer is None:
            raise UserValueError("soft-formatted decoding needs the motion tokenizer (motion_tokenizer=...)")
        for i, t in enumerate(targets):
            if t is None or tuple(torch.as_tensor(t).shape) != (len(slots[i]), tb):
                shape = None if t is None else tuple(torch.as_tensor(t).shape)
                raise UserValueError(f"soft-formatted decoding needs prompt {i}'s ground-truth blocks "
                                     f"({len(slots[i])}, {tb}), got {shape}; build prompts with prompt_from_dataset")
    if motion_tokenizer is not None and motion_tokenizer.layout != vocab.layout:
        raise UserValueError(f"the motion tokenizer's layout {motion_tokenizer.layout} is not the VLA's {vocab.layout}")
    max_new = config.max_new_tokens or int(nb.max()) * L_blk + (1 if config.mode != "free" else 32)
    procs = []
    if config.mode in ("block", "soft"):
        procs.append(BlockFormatLogitsProcessor(vocab, nb, eos))
    procs += list(logits_processors or []) + _sampling(config)

    device = next(model.parameters()).device
    ids, mask, pix = left_pad(prompts, pad)
    B, P = ids.shape
    seq = torch.full((B, P + max_new), pad, dtype=torch.long, device=device)
    att = torch.zeros((B, P + max_new), dtype=torch.long, device=device)
    seq[:, :P], att[:, :P] = ids.to(device), mask.to(device)
    if pix is not None:
        pix = pix.to(device=device, dtype=model.dtype)
    gen = torch.Generator(device=device).manual_seed(int(config.seed))
    finished = torch.zeros(B, dtype=torch.bool, device=device)
    predicted: list[dict[int, torch.Tensor]] = [{} for _ in range(B)]
    fed: list[dict[int, torch.Tensor]] = [{} for _ in range(B)]
    cache = None
    if config.use_cache:
        from transformers import DynamicCache

        cache = DynamicCache()
    t0 = time.perf_counter()
    # position ids follow the attention mask (left padding), as model.generate does; answer tokens are all real
    pos_all = torch.cat([(att[:, :P].cumsum(-1) - 1).clamp_min(0),
                         att[:, :P].sum(-1, keepdim=True) + torch.arange(max_new, device=device)], 1)
    logits = _forward(model, seq[:, :P], att[:, :P], pos_all[:, :P], pix, cache, 0)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    prefill = time.perf_counter() - t0
    first_block = None
    cur, steps = P, 0
    for step in range(max_new):
        scores = logits.float()
        for p in procs:
            scores = p(seq[:, :cur], scores)
        if config.greedy:
            nxt = scores.argmax(-1)
        else:
            probs = torch.softmax(scores, -1)
            nxt = torch.multinomial(probs, 1, generator=gen)[:, 0]
        nxt = torch.where(finished, torch.full_like(nxt, pad), nxt)
        seq[:, cur] = nxt
        att[:, cur] = 1
        cur += 1
        steps += 1
        finished |= nxt == eos
        if first_block is None and step + 1 >= L_blk and config.mode != "free":
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            first_block = time.perf_counter() - t0
        if progress is not None:
            progress(step + 1, max_new)
        if bool(finished.all()) or step + 1 == max_new:
            break
        past = cur - 1
        blk, pos = divmod(step, L_blk)  # the token just chosen sits at position `pos` of block `blk`
        if config.mode == "soft" and pos == tb:  # the block's last motion token: average and feed back
            rows = [b for b in range(B) if blk < int(nb[b]) and not bool(finished[b])]
            for b in rows:
                pred = seq[b, cur - tb:cur] - vocab.offset
                soft = requantize_average(motion_tokenizer, pred.cpu(), torch.as_tensor(targets[b])[blk]).to(device)
                predicted[b][blk], fed[b][blk] = pred.cpu(), soft.cpu()
                seq[b, cur - tb:cur] = soft + vocab.offset
            past = cur - tb
            if cache is not None and cache.get_seq_length() > past:
                cache.crop(past - cache.get_seq_length())  # negative: tokens to drop (transformers >= 5)
        logits = _forward(model, seq[:, :cur], att[:, :cur], pos_all[:, :cur], None if cache is not None else pix, cache,
                          past if cache is not None else 0)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    total = time.perf_counter() - t0
    samples = []
    for b, p in enumerate(prompts):
        out = seq[b, P:cur].cpu()
        if bool((out == eos).any()):
            out = out[:int((out == eos).nonzero()[0]) + 1]
        parse = parse_blocks(out, vocab, len(slots[b]), eos)
        blocks, valid, fb = parse.blocks, parse.valid, None
        if config.mode == "soft":
            blocks = blocks.clone()
            fb = blocks.clone()
            for k, v in predicted[b].items():
                blocks[k] = v
            # parse saw the fed-back tokens: they are valid by construction like the predictions
        keep = (out != eos) & ~vocab.is_motion(out) & (out != vocab.mot_start) & (out != vocab.mot_end) & (out != pad)
        text = vla.tokenizer.decode(out[keep].tolist(), skip_special_tokens=False) if vla.tokenizer is not None else ""
        mano = None
        if motion_tokenizer is not None:
            mano = decode_hands(blocks, slots[b], motion_tokenizer, start=p.start, chain=config.chain)
        samples.append(SampleOutput(out, text, slots[b], blocks, valid, parse, fb, mano, dict(p.meta)))
    return GenerationResult(samples, config, prefill, total, steps, first_block)
