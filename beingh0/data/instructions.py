"""Instruction samples: the three UniHand task types, templates with explicit durations, motion
placeholders, and a builder from episode text annotations (paper section 5.2.3).

Task types (``TASKS``):

``generation``   instructional motion generation: image + instruction + duration -> motion;
``translation``  motion translation: image + motion -> text;
``prediction``   contextual motion prediction: image + motion history (+ optional instruction)
                 -> the next motion.

Placeholder grammar (filled by the tokenizer stage, never by this module)::

    placeholder := "<IMAGE>" | "<MOTION:" side ":" start "-" stop "s>"
    side        := "left" | "right" | "both"
    start, stop := non-negative integers, start < stop (seconds from the sample's t0)

``<MOTION:left:0-2s>`` stands for the left hand's motion tokens of seconds 0 and 1 of the sample:
one ``<MOT>...</MOT>`` block of 128 tokens per (second, hand), second-major and left before right
for ``both`` (:func:`motion_blocks`). ``<IMAGE>`` is the scene image at the sample's
``image_time`` (absolute seconds in the episode). Every template states its duration in words
(``{duration}`` renders as "1 second" / "3 seconds").
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from ..core.config import validate_config

TASKS = ("generation", "translation", "prediction")
_PLACEHOLDER = re.compile(r"<MOTION:(left|right|both):(\d+)-(\d+)s>|<IMAGE>")
_ANY_TAG = re.compile(r"<(?:IMAGE|MOTION)[^<>\s]*>?")


@dataclass(frozen=True)
class MotionRef:
    """One ``<MOTION:side:start-stops>`` placeholder."""

    side: str
    start: int
    stop: int

    def __str__(self) -> str:
        return f"<MOTION:{self.side}:{self.start}-{self.stop}s>"


def motion_placeholder(side: str, start: int, stop: int) -> str:
    if side not in ("left", "right", "both"):
        raise ValueError(f"side must be 'left', 'right' or 'both', got {side!r}")
    if not (isinstance(start, int) and isinstance(stop, int) and 0 <= start < stop):
        raise ValueError(f"need integer seconds 0 <= start < stop, got {start!r}-{stop!r}")
    return str(MotionRef(side, start, stop))


def parse_placeholders(text: str) -> list[MotionRef | str]:
    """Placeholders of a rendered prompt/response in order (``"<IMAGE>"`` or :class:`MotionRef`).

    Raises ValueError on a malformed motion placeholder (e.g. ``<MOTION:up:0-2s>``, ``3-1s``).
    """
    out: list[MotionRef | str] = []
    for m in _ANY_TAG.finditer(text):
        tag = m.group(0)
        pm = _PLACEHOLDER.fullmatch(tag)
        if tag.startswith("<MOTION") or tag.startswith("<IMAGE"):
            if pm is None:
                raise ValueError(f"malformed placeholder {tag!r}; grammar: <IMAGE> or <MOTION:left|right|both:START-STOPs>")
            if tag == "<IMAGE>":
                out.append("<IMAGE>")
            else:
                a, b = int(pm.group(2)), int(pm.group(3))
                if a >= b:
                    raise ValueError(f"placeholder {tag!r}: start must be < stop")
                out.append(MotionRef(pm.group(1), a, b))
    return out


def motion_blocks(ref: MotionRef) -> list[tuple[int, str]]:
    """The (second, hand) blocks a placeholder expands to: second-major, left before right."""
    sides = ("left", "right") if ref.side == "both" else (ref.side,)
    return [(s, h) for s in range(ref.start, ref.stop) for h in sides]


def duration_words(seconds: int) -> str:
    return f"{seconds} second" + ("" if seconds == 1 else "s")


def hand_words(side: str) -> str:
    return "both hands" if side == "both" else f"the {side} hand"


# ----------------------------------------------------------------------------------- templates
# Fields: {instruction} {duration} {hand} {motion} {history} {history_duration} {future_duration}.
# Each template holds every field its task needs (checked by tests/data/test_instructions.py).
TEMPLATES: dict[str, list[str]] = {
    "generation": [
        "<IMAGE>\n{instruction}. Generate the motion of {hand} for {duration}.",
        "<IMAGE>\nInstruction: {instruction}. Produce {duration} of hand motion for {hand}.",
        "<IMAGE>\nHow should {hand} move over the next {duration} to {instruction}?",
        "<IMAGE>\nPlan {duration} of motion for {hand} that will {instruction}.",
        "<IMAGE>\nGiven this scene, show {hand} performing: {instruction}. Duration: {duration}.",
        "<IMAGE>\nTask: {instruction}. Output {hand}'s trajectory for exactly {duration}.",
        "<IMAGE>\nMove {hand} to {instruction}, taking {duration}.",
        "<IMAGE>\nYou control {hand}. In {duration}, {instruction}.",
        "<IMAGE>\nGenerate a {duration} motion sequence of {hand} for the instruction \"{instruction}\".",
        "<IMAGE>\nLook at the image and {instruction} with {hand}. The motion lasts {duration}.",
        "<IMAGE>\nWrite the hand motion ({hand}, {duration}) that carries out: {instruction}.",
        "<IMAGE>\nFor the next {duration}, what motion of {hand} achieves \"{instruction}\"?",
        "<IMAGE>\nPredict {hand}'s motion in camera coordinates for {duration}: {instruction}.",
        "<IMAGE>\n{instruction}. Use {hand}; the motion must take {duration}.",
        "<IMAGE>\nDemonstrate with {hand}, over {duration}, how to {instruction}.",
        "<IMAGE>\nSynthesize {duration} of dexterous motion for {hand}. Goal: {instruction}.",
        "<IMAGE>\nInstruction for {hand}: {instruction}. Time budget: {duration}.",
        "<IMAGE>\nFrom the current view, generate {hand}'s motion to {instruction} within {duration}.",
        "<IMAGE>\nCarry out \"{instruction}\" using {hand} in a motion of {duration}.",
        "<IMAGE>\nGive the {duration} hand trajectory of {hand} for this step: {instruction}.",
    ],
    "translation": [
        "<IMAGE>\n{motion}\nDescribe what {hand} do in these {duration} of motion.",
        "<IMAGE>\n{motion}\nWhat is happening in this {duration} motion of {hand}?",
        "<IMAGE>\nHere is {duration} of motion of {hand}: {motion}. Explain the action.",
        "<IMAGE>\n{motion}\nSummarize the {duration} of hand-object interaction by {hand}.",
        "<IMAGE>\nTranslate the motion of {hand} ({duration}) into words: {motion}",
        "<IMAGE>\n{motion}\nIn one sentence, what did {hand} do during these {duration}?",
        "<IMAGE>\nMotion of {hand} over {duration}: {motion}\nWhich task is being performed?",
        "<IMAGE>\n{motion}\nCaption this {duration} clip of {hand}'s movement.",
        "<IMAGE>\nWatch {hand} for {duration}: {motion}. Describe the contact and the object.",
        "<IMAGE>\n{motion}\nGiven the scene, describe the {duration} motion of {hand} in plain language.",
        "<IMAGE>\nExplain the intention behind this {duration} motion of {hand}: {motion}",
        "<IMAGE>\n{motion}\nWhat does {hand} manipulate in these {duration}, and how?",
        "<IMAGE>\nDescribe, relative to the camera, how {hand} moves in {duration}: {motion}",
        "<IMAGE>\n{motion}\nName the action {hand} perform over the {duration} shown.",
        "<IMAGE>\nConvert this {duration} hand motion of {hand} into an instruction: {motion}",
        "<IMAGE>\n{motion}\nWrite the instruction that would produce this {duration} motion of {hand}.",
        "<IMAGE>\nHand motion ({hand}, {duration}): {motion}\nDescription:",
        "<IMAGE>\n{motion}\nWhat is the goal of {hand} during the {duration} shown?",
        "<IMAGE>\nGiven {duration} of {hand}'s motion {motion}, describe the interaction.",
        "<IMAGE>\n{motion}\nTell me what {hand} just did in {duration}.",
    ],
    "prediction": [
        "<IMAGE>\nThe last {history_duration} of {hand}: {history}\nContinue the motion for {future_duration}.",
        "<IMAGE>\n{history}\nGiven {history_duration} of past motion of {hand}, predict the next {future_duration}.",
        "<IMAGE>\nHistory ({history_duration}, {hand}): {history}\nWhat happens in the next {future_duration}?",
        "<IMAGE>\n{history}\nAnticipate {hand}'s next {future_duration} of motion.",
        "<IMAGE>\nContinue {hand}'s movement {history} for another {future_duration}.",
        "<IMAGE>\n{history}\nForecast {future_duration} of motion for {hand} after these {history_duration}.",
        "<IMAGE>\nPast motion of {hand} over {history_duration}: {history}. Predict {future_duration} more.",
        "<IMAGE>\n{history}\nExtend this {history_duration} motion of {hand} by {future_duration}.",
        "<IMAGE>\nAfter {history}, how will {hand} move in the following {future_duration}?",
        "<IMAGE>\n{history}\nGenerate the next {future_duration} of {hand}'s trajectory from the current scene.",
        "<IMAGE>\nThe goal is to {instruction}. So far ({history_duration}): {history}\nPredict the next {future_duration} of {hand}.",
        "<IMAGE>\n{history}\nTo {instruction}, continue {hand}'s motion for {future_duration}.",
        "<IMAGE>\nInstruction: {instruction}. Motion so far of {hand}: {history}. Next {future_duration}:",
        "<IMAGE>\n{history}\nKeep going with {hand} for {future_duration} to {instruction}.",
        "<IMAGE>\nTask: {instruction}. Given {history_duration} of history {history}, output {future_duration} of motion for {hand}.",
        "<IMAGE>\n{history}\nThe hands are trying to {instruction}. What do {hand} do in the next {future_duration}?",
        "<IMAGE>\nContinue the {history_duration} motion {history} of {hand} for {future_duration} so as to {instruction}.",
        "<IMAGE>\n{history}\nPredict {future_duration} of {hand}'s motion toward the goal: {instruction}.",
        "<IMAGE>\nGoal: {instruction}. History of {hand}: {history}. Continue for {future_duration}.",
        "<IMAGE>\n{history}\nWith the goal \"{instruction}\", forecast the next {future_duration} of {hand}.",
    ],
}
REQUIRED_FIELDS = {"generation": ("instruction", "duration", "hand"), "translation": ("motion", "duration", "hand"),
                   "prediction": ("history", "future_duration", "hand")}


def render(task: str, template_id: int, **fields: Any) -> str:
    """Fill template ``template_id`` of ``task``; a missing field is an error naming it."""
    if task not in TEMPLATES:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    try:
        return TEMPLATES[task][template_id].format(**fields)
    except KeyError as e:
        raise ValueError(f"template {task}[{template_id}] needs field {e}") from None


def _clean(s: str) -> str:
    return s.strip().rstrip(".").strip()


def _lower_first(s: str) -> str:
    return s[:1].lower() + s[1:] if s[:2] != s[:2].upper() else s


# ----------------------------------------------------------------------------------- builder
@dataclass(frozen=True)
class InstructionOptions:
    """Which instruction samples to build from one episode."""

    max_seconds: int = field(default=10, metadata={"ge": 1})
    """Longest motion of a sample in seconds (chunks are at most 10 s in UniHand)."""
    history_seconds: tuple[int, ...] = field(default=(1, 2), metadata={"ge": 1})
    """History lengths (seconds) tried for motion-prediction samples."""
    future_seconds: tuple[int, ...] = field(default=(1, 2), metadata={"ge": 1})
    """Future lengths (seconds) tried for motion-prediction samples."""
    prediction_instruction_rate: float = field(default=0.5, metadata={"ge": 0, "le": 1})
    """Fraction of prediction samples that carry the instruction."""

    def __post_init__(self):
        validate_config(self)


def _rng(seed: int, key: str) -> np.random.Generator:
    return np.random.default_rng([seed & 0xFFFFFFFF, *key.encode()])


def instruction_samples(episode: Mapping[str, Any], seed: int = 0, options: InstructionOptions = InstructionOptions()) -> list[dict]:
    """Instruction samples of one episode, deterministic in (seed, episode key).

    ``episode``: ``{"key", "source", "hands", "duration", "text"}`` with ``text`` as in the episode
    header (``instruction``, ``summary``, ``per_hand``, ``segments``): an index entry plus
    ``ShardIndex.header(i)["text"]``, or :func:`episode_view` of an ``Episode``.
    Each sample: task, source, episode, hand ("left"/"right"/"both"), t0 and duration (seconds;
    motion placeholders count from t0), image_time, template (id), prompt, response.
    """
    key, text, hands = episode["key"], episode["text"], sorted(episode["hands"])
    if not hands:  # a robot episode (LeRobot): no hand motion to put into instruction samples
        return []
    total = int(min(options.max_seconds, np.floor(episode["duration"] + 1e-6)))
    rng = _rng(seed, key)
    both = "both" if len(hands) == 2 else hands[0]
    out: list[dict] = []

    def add(task, hand, t0, dur, image_time, fields, response, tid=None):
        tid = int(rng.integers(len(TEMPLATES[task]))) if tid is None else tid
        prompt = render(task, tid, hand=hand_words(hand), duration=duration_words(dur), **fields)
        out.append({"task": task, "source": episode["source"], "episode": key, "hand": hand, "t0": float(t0),
                    "duration": int(dur), "image_time": float(image_time), "template": tid, "prompt": prompt,
                    "response": response})

    def gen_and_trans(hand, t0, dur, instruction, description):
        if instruction:
            add("generation", hand, t0, dur, t0, {"instruction": _lower_first(_clean(instruction))}, motion_placeholder(hand, 0, dur))
        if description:
            add("translation", hand, t0, dur, t0, {"motion": motion_placeholder(hand, 0, dur)}, _clean(description) + ".")

    if total >= 1:
        gen_and_trans(both, 0.0, total, text.get("instruction", ""), text.get("summary", ""))
        for side, instr in sorted(text.get("per_hand", {}).items()):
            if side in hands:
                gen_and_trans(side, 0.0, total, instr, "")
    for seg in text.get("segments", ()):
        t0 = float(np.floor(seg["t0"] + 1e-6))
        dur = int(max(1, round(seg["t1"] - t0)))
        if t0 + dur > episode["duration"] + 1e-6:
            continue
        hand = seg["hand"] if seg["hand"] != "both" else both
        if hand != "both" and hand not in hands or (hand == "both" and len(hands) < 2):
            continue
        gen_and_trans(hand, t0, dur, seg["instruction"], seg.get("caption", ""))
    split = [(h, f) for h in options.history_seconds for f in options.future_seconds if h + f <= total]
    if split:
        for hand in ([both] + ([s for s in hands] if len(hands) == 2 else [])):
            h, f = split[int(rng.integers(len(split)))]
            instr = text.get("instruction", "") if hand == both else text.get("per_hand", {}).get(hand, "")
            with_instr = bool(instr) and rng.random() < options.prediction_instruction_rate
            pool = [i for i, t in enumerate(TEMPLATES["prediction"]) if ("{instruction}" in t) == with_instr]
            tid = int(pool[int(rng.integers(len(pool)))])
            t0 = float(rng.integers(0, total - h - f + 1))
            fields = {"history": motion_placeholder(hand, 0, h), "history_duration": duration_words(h),
                      "future_duration": duration_words(f)}
            if with_instr:
                fields["instruction"] = _lower_first(_clean(instr))
            add("prediction", hand, t0, h + f, t0 + h, fields, motion_placeholder(hand, h, h + f), tid)
    return out


def episode_view(ep) -> dict:
    """The dict :func:`instruction_samples` reads, from an :class:`~beingh0.data.episode.Episode`."""
    t = ep.text
    return {"key": ep.episode_id, "source": ep.source, "hands": sorted(ep.hands), "duration": ep.duration,
            "text": {"instruction": t.instruction, "summary": t.summary, "per_hand": dict(t.per_hand),
                     "segments": [vars(s) for s in t.segments]}}


def dataset_instruction_samples(root, seed: int = 0, options: InstructionOptions = InstructionOptions(),
                                progress: bool = False) -> list[dict]:
    """Instruction samples of every episode in a dataset folder (reads only the episode headers)."""
    from tqdm import tqdm

    from .shards import ShardIndex

    idx = ShardIndex(root)
    out: list[dict] = []
    for i in tqdm(range(len(idx)), desc="instructions", unit="ep", disable=not progress):
        e = idx.refs[i].entry
        view = {"key": e["key"], "source": e["source"], "hands": e["hands"], "duration": e["duration"],
                "text": idx.header(i)["text"]}
        out += instruction_samples(view, seed, options)
    return out


def check_sample(s: Mapping[str, Any], episode_duration: float | None = None) -> None:
    """Consistency of one instruction sample: placeholders parse, lie inside [0, duration] and name
    the sample's hand; raises ValueError otherwise."""
    refs = [r for r in parse_placeholders(s["prompt"]) + parse_placeholders(s["response"]) if isinstance(r, MotionRef)]
    for r in refs:
        if r.stop > s["duration"]:
            raise ValueError(f"{r} runs past the sample's {s['duration']} s")
        if r.side != s["hand"]:
            raise ValueError(f"{r} names another hand than the sample's {s['hand']!r}")
    if episode_duration is not None and s["t0"] + s["duration"] > episode_duration + 1e-6:
        raise ValueError(f"sample [{s['t0']}, {s['t0'] + s['duration']}) s runs past the episode ({episode_duration} s)")
    if s["task"] in ("generation", "prediction") and not any(isinstance(r, MotionRef) for r in parse_placeholders(s["response"])):
        raise ValueError(f"{s['task']} sample without a motion placeholder in its response")
