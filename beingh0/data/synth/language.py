"""Language for synthetic episodes: chunk-level instruction and summary, per-hand instructions,
and per-second instructions and captions that say what each hand does in that second.

Everything is generated from the motion's phase list (:class:`.motion.Phase`), so the text is
true by construction: each per-second segment names the phases that overlap that second, the
objects by the colour and noun they are rendered with, and (for moves) the direction of the wrist
in the camera frame (OpenCV: x right, y down, z away from the camera). Phrasing is drawn from
several templates with the episode's random generator.
"""
from __future__ import annotations

import math

import numpy as np

from ..episode import TextAnnotations, TextSegment

#: Caption phrases per motion phase: (imperative, descriptive) templates; {o} object, {d} destination,
#: {h} hand ("left"/"right"), {dir} a direction. Also the text the tiny VLA's BPE is trained on.
PHRASES = {
    "reach": (["reach for {o}", "move your {h} hand toward {o}", "go for {o}", "reach out to {o}"],
              ["reaches toward {o}", "moves toward {o} with the fingers open", "approaches {o}", "reaches out for {o}"]),
    "grasp:power": (["grab {o}", "grasp {o} firmly", "wrap your fingers around {o}", "take hold of {o}"],
                    ["closes around {o}", "wraps its fingers around {o}", "grasps {o} with the whole hand", "takes a firm grip on {o}"]),
    "grasp:precision": (["grasp {o} with your fingertips", "take {o} between thumb and fingers", "grip {o}"],
                        ["takes {o} with the fingertips", "grips {o} between thumb and fingers", "closes its fingertips on {o}"]),
    "grasp:pinch": (["pinch {o}", "pick {o} up between thumb and index finger", "pinch {o} with two fingers"],
                    ["pinches {o} between thumb and index finger", "closes thumb and index finger on {o}"]),
    "lift": (["lift {o}", "raise {o}", "pick {o} up off the table"], ["lifts {o}", "raises {o} off the table", "picks {o} up"]),
    "move:dest": (["move {o} over to {d}", "carry {o} toward {d}", "bring {o} to {d}"],
                  ["carries {o} toward {d}", "moves {o} over to {d}", "brings {o} across to {d}"]),
    "move": (["move {o} {dir}", "carry {o} {dir}", "shift {o} {dir}"], ["moves {o} {dir}", "carries {o} {dir}", "shifts {o} {dir}"]),
    "place:dest": (["put {o} down on {d}", "place {o} on {d}", "set {o} on {d}"],
                   ["sets {o} down on {d}", "places {o} on {d}", "puts {o} on {d}"]),
    "place": (["put {o} down", "set {o} on the table", "place {o} back on the table"],
              ["sets {o} down on the table", "puts {o} down", "places {o} on the table"]),
    "release": (["let go of {o}", "release {o}", "open your hand and let go of {o}"],
                ["opens and lets go of {o}", "releases {o}", "opens its fingers away from {o}"]),
    "retreat": (["pull your {h} hand back", "move your {h} hand back to rest", "withdraw your {h} hand"],
                ["withdraws toward the body", "pulls back and settles on the table", "moves back to its resting place"]),
    "tilt": (["tilt {o} over {d}", "tip {o} toward {d}"], ["tilts {o} over {d}", "turns the wrist to tip {o} toward {d}"]),
    "pour": (["pour from {o} into {d}", "keep pouring into {d}"], ["pours from {o} into {d}", "holds {o} tipped over {d}"]),
    "untilt": (["turn {o} back upright", "straighten {o}"], ["turns {o} back upright", "rotates {o} back to upright"]),
    "press": (["press {o}", "push {o} down with your index finger", "press down on {o}"],
              ["presses {o} with the index finger", "pushes down on {o}", "taps {o} with the index finger"]),
    "twist": (["twist {o}", "unscrew {o}", "turn {o} to loosen it"], ["twists {o}", "unscrews {o}", "turns {o} to loosen it"]),
    "hold": (["hold {o} steady", "keep {o} in place", "steady {o}"], ["holds {o} steady", "keeps {o} in place", "steadies {o}"]),
    "gesture": (["lift your {h} hand and move its fingers", "gesture with your {h} hand", "flex and spread the fingers of your {h} hand"],
                ["lifts off the table and moves its fingers", "raises and gestures with its fingers", "lifts up, flexes and spreads its fingers"]),
    "rest": (["keep your {h} hand still", "rest your {h} hand on the table", "leave your {h} hand where it is"],
             ["rests on the table", "stays still on the table", "lies relaxed on the table"]),
}


def _pick(rng, options):
    return options[int(rng.integers(len(options)))]


def direction_words(d_cam: np.ndarray) -> str:
    """Dominant direction of a camera-frame displacement (metres), in words."""
    if np.linalg.norm(d_cam) < 0.02:
        return "a little"
    ax = int(np.argmax(np.abs(d_cam) * np.array([1.0, 1.0, 0.7])))
    if ax == 0:
        return "to the right" if d_cam[0] > 0 else "to the left"
    if ax == 1:
        return "downward" if d_cam[1] > 0 else "upward"
    return "away from the camera" if d_cam[2] > 0 else "toward the camera"


class Describer:
    """Phrases for the phases of one episode."""

    def __init__(self, rng, objects, wrist_cam: dict, times: np.ndarray):
        self.rng, self.objects, self.wrist_cam, self.times = rng, objects, wrist_cam, times

    def obj(self, i):
        return "the object" if i is None else f"the {self.objects[i].name}"

    def _key(self, ph) -> tuple[str, dict]:
        name, ex = ph.name, ph.extra
        fill = {"o": self.obj(ph.obj), "h": ph.hand, "d": "", "dir": ""}
        dest = ex.get("onto", ex.get("to"))
        if name == "grasp":
            return "grasp:" + ex.get("synergy", "power"), fill
        if name in ("move", "place") and dest is not None:
            fill["d"] = self.obj(dest)
            return name + ":dest", fill
        if name in ("tilt", "pour"):
            fill["d"] = self.obj(dest)
        if name == "move":
            fill["dir"] = direction_words(self._displacement(ph.hand, ph.t0, ph.t1))
        return name, fill

    def _displacement(self, side, t0, t1) -> np.ndarray:
        w = self.wrist_cam[side]
        i0 = int(np.clip(np.searchsorted(self.times, t0), 0, len(w) - 1))
        i1 = int(np.clip(np.searchsorted(self.times, t1) - 1, 0, len(w) - 1))
        return w[i1] - w[i0]

    def imperative(self, ph) -> str:
        k, fill = self._key(ph)
        return _pick(self.rng, PHRASES[k][0]).format(**fill)

    def descriptive(self, ph) -> str:
        k, fill = self._key(ph)
        return _pick(self.rng, PHRASES[k][1]).format(**fill)


def _join(parts: list[str]) -> str:
    if not parts:
        return ""
    if len(parts) == 1:
        return parts[0]
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def _pronoun(parts: list[str], names: list[str]) -> list[str]:
    """Replace repeated mentions of the same object by 'it' after the first."""
    seen, out = set(), []
    for p, n in zip(parts, names):
        if n in seen and n in p:
            p = p.replace(n, "it", 1)
        seen.add(n)
        out.append(p)
    return out


def _clip_phases(phases, ws: float, duration: float, side: str):
    """Phases of ``side`` in episode time, clipped to [0, duration], with rest filling the gaps."""
    from .motion import Phase

    out = []
    t = 0.0
    for ph in sorted((p for p in phases if p.hand == side), key=lambda p: p.t0):
        a, b = max(ph.t0 - ws, 0.0), min(ph.t1 - ws, duration)
        if b - a <= 1e-6:
            continue
        if a > t + 1e-6:
            out.append(Phase(t, a, "rest", None, side))
        out.append(Phase(a, b, ph.name, ph.obj, side, ph.extra))
        t = b
    if t < duration - 1e-6:
        name = "rest" if not out or out[-1].name in ("rest", "retreat", "release") else "hold"
        out.append(Phase(t, duration, name, out[-1].obj if out and name == "hold" else None, side))
    return out


def describe(rng, phases, objects, sides, ws: float, duration: float, wrist_cam: dict, times: np.ndarray) -> TextAnnotations:
    """Text for an episode covering plan times [ws, ws + duration). ``times`` are episode times of
    the frames and ``wrist_cam[side]`` (T, 3) the camera-frame wrists, for direction words."""
    D = Describer(rng, objects, wrist_cam, times)
    per_side = {s: _clip_phases(phases, ws, duration, s) for s in sides}
    active = {s: [p for p in per_side[s] if p.name != "rest"] for s in sides}
    H = {"left": "the left hand", "right": "the right hand"}

    def seq(side, phs, imperative: bool):
        merged = []
        for p in phs:
            if merged and merged[-1].name == p.name and merged[-1].obj == p.obj:
                continue
            merged.append(p)
        texts = [(D.imperative if imperative else D.descriptive)(p) for p in merged]
        return _pronoun(texts, [D.obj(p.obj) for p in merged])

    per_hand, summary_parts, instr_parts = {}, [], []
    for s in sides:
        if active[s]:
            per_hand[s] = _join(seq(s, active[s], True))
            summary_parts.append(f"{H[s]} " + _join(seq(s, active[s], False)))
            instr_parts.append((s, per_hand[s]))
        else:
            per_hand[s] = D.imperative(per_side[s][0]) if per_side[s] else ""
            summary_parts.append(f"{H[s]} " + D.descriptive(per_side[s][0]))
    if len(instr_parts) == 1:
        instruction = instr_parts[0][1]
    elif instr_parts:
        instruction = "; ".join(f"with the {s} hand, {t}" for s, t in instr_parts)
    else:
        instruction = "keep your hands resting on the table"
    instruction = instruction[0].upper() + instruction[1:] + "."
    summary = "; ".join(summary_parts)
    summary = summary[0].upper() + summary[1:] + "."

    segs = []
    for k in range(int(math.ceil(duration - 1e-6))):
        a, b = float(k), float(min(k + 1, duration))
        if b - a < 1e-6:
            continue
        texts = {}
        for s in sides:
            ov = [(min(p.t1, b) - max(p.t0, a), p) for p in per_side[s] if min(p.t1, b) - max(p.t0, a) > 1e-6]
            main = max(ov, key=lambda x: x[0])[1]
            shown = [p for o, p in ov if o >= 0.2 * (b - a) or p is main][:3]
            imp = _join(_pronoun([D.imperative(p) for p in [main]], [D.obj(main.obj)]))
            desc = _join(_pronoun([D.descriptive(p) for p in shown], [D.obj(p.obj) for p in shown]))
            moving = any(p.name != "rest" for p in shown)
            texts[s] = (imp, f"{H[s]} {desc}", moving)
            segs.append(TextSegment(a, b, imp[0].upper() + imp[1:] + ".", f"{H[s][0].upper()}{H[s][1:]} {desc}.", s))
        movers = [s for s in sides if texts[s][2]]
        if len(movers) >= 2:
            ins = f"With the left hand, {texts['left'][0]}; with the right hand, {texts['right'][0]}."
            cap = f"{texts['left'][1]}, while {texts['right'][1]}."
        elif movers:
            m = movers[0]
            ins = texts[m][0][0].upper() + texts[m][0][1:] + "."
            others = [s for s in sides if s != m]
            cap = texts[m][1] + (f", while {texts[others[0]][1]}" if others else "") + "."
        else:
            ins = "Keep your hands still."
            cap = " and ".join(texts[s][1] for s in sides) + "."
        segs.append(TextSegment(a, b, ins, cap[0].upper() + cap[1:], "both"))
    segs.sort(key=lambda s: (s.t0, {"both": 0, "left": 1, "right": 2}[s.hand]))
    return TextAnnotations(instruction, summary, per_hand, segs)
