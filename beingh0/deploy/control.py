"""A real-time control loop around a policy: action chunks, overlapping inference, a deadline
watchdog, joint and velocity limits, latency statistics and a timeline.

At a fixed period ``dt`` the loop sends one joint command. Every ``replan_every`` (k) steps it takes
an observation and starts inference of the next chunk in a background thread, so inference overlaps
the execution of the current chunk. A chunk computed from the observation of step ``s`` applies to
steps ``s, s+1, ...``; when it arrives at step ``t`` the loop switches to its entry ``t - s`` (the
stale head is skipped).

Watchdog: an inference that is still running ``deadline_s`` after it started (default ``k * dt``)
is late, and so is a plan that has run out. While late, the loop holds the last safe action (the
last command it sent; before the first chunk, the measured joint positions) instead of executing
stale plan entries, and counts it. Every command is clipped to the joint limits and to
``max_velocity * dt`` from the previous command.

The policy is any callable ``(image uint8 (H, W, 3), state (n,)) -> (chunk, n)`` joint targets:
``PolicyRuntime.predict`` locally or ``PolicyClient.infer`` against a server. :class:`SimulatedRobot`
is a kinematic plant with limits and command latency, for tests and ``beingh0 serve --simulate``.
A robot is anything with ``n`` (joints), ``observe() -> (image, state)`` and ``command(target)``
(``q``, the measured joints, is logged when it has one).
"""
from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from ..core.errors import UserValueError

__all__ = ["ControlLog", "ControlLoop", "JointLimits", "SimulatedRobot"]


@dataclass
class JointLimits:
    """Position limits (rad) and a velocity limit (rad/s) per joint."""

    lower: np.ndarray
    upper: np.ndarray
    max_velocity: np.ndarray

    def __post_init__(self):
        self.lower, self.upper, self.max_velocity = (np.asarray(x, np.float64) for x in
                                                     (self.lower, self.upper, self.max_velocity))
        if not (self.lower.shape == self.upper.shape == self.max_velocity.shape) or self.lower.ndim != 1:
            raise UserValueError("joint limits: lower, upper and max_velocity must be 1-D of the same length")
        if np.any(self.lower > self.upper) or np.any(self.max_velocity <= 0):
            raise UserValueError("joint limits: need lower <= upper and max_velocity > 0")

    @classmethod
    def uniform(cls, n: int, lower=-1.0, upper=1.0, max_velocity=2.0) -> JointLimits:
        return cls(np.full(n, lower), np.full(n, upper), np.full(n, max_velocity))

    def clip(self, target: np.ndarray, previous: np.ndarray, dt: float) -> tuple[np.ndarray, bool]:
        """``target`` within the position limits and ``max_velocity * dt`` of ``previous``; (clipped, changed)."""
        step = self.max_velocity * dt
        out = np.clip(np.clip(target, previous - step, previous + step), self.lower, self.upper)
        return out, bool(np.any(np.abs(out - target) > 1e-12))


class SimulatedRobot:
    """Kinematic plant: a command reaches the joints ``latency_steps`` steps after it was sent; the
    joints move toward it at most ``max_velocity * dt`` per step and stay within the limits (the
    plant clips too, and counts what it had to clip: ``violations`` stays 0 behind a correct loop)."""

    def __init__(self, limits: JointLimits, dt: float, *, latency_steps: int = 1, image_hw=(24, 32), seed: int = 0):
        self.limits, self.dt, self.latency_steps = limits, dt, latency_steps
        n = limits.lower.shape[0]
        self.q = np.clip(np.zeros(n), limits.lower, limits.upper)
        self._pipe: list[np.ndarray] = [self.q.copy() for _ in range(latency_steps)]
        self._rng = np.random.default_rng(seed)
        self.image_hw = image_hw
        self.violations = 0
        self.commands: list[np.ndarray] = []

    @property
    def n(self) -> int:
        return self.q.shape[0]

    def observe(self) -> tuple[np.ndarray, np.ndarray]:
        img = self._rng.integers(0, 255, (*self.image_hw, 3), dtype=np.uint8)
        return img, self.q.astype(np.float32)

    def command(self, target: np.ndarray) -> None:
        target = np.asarray(target, np.float64)
        if np.any(target < self.limits.lower - 1e-9) or np.any(target > self.limits.upper + 1e-9):
            self.violations += 1
        if self.commands and np.any(np.abs(target - self.commands[-1]) > self.limits.max_velocity * self.dt + 1e-9):
            self.violations += 1
        self.commands.append(target.copy())
        self._pipe.append(target)
        applied = self._pipe.pop(0)
        step = self.limits.max_velocity * self.dt
        self.q = np.clip(self.q + np.clip(applied - self.q, -step, step), self.limits.lower, self.limits.upper)


@dataclass
class ControlLog:
    """What a run did; :meth:`stats` and :meth:`plot` summarise it."""

    dt: float
    replan_every: int
    t: list[float] = field(default_factory=list)          # wall time of each step (s from start)
    commands: list[np.ndarray] = field(default_factory=list)
    states: list[np.ndarray] = field(default_factory=list)
    held: list[bool] = field(default_factory=list)        # watchdog held the last safe action
    clipped: list[bool] = field(default_factory=list)
    inferences: list[dict] = field(default_factory=list)  # {step, start, end, late, used}
    overruns: int = 0                                     # steps that started after their tick

    def stats(self) -> dict:
        lat = np.array([(i["end"] - i["start"]) * 1e3 for i in self.inferences if i["end"] is not None])
        period = np.diff(self.t) * 1e3 if len(self.t) > 1 else np.zeros(1)
        p = (lambda a, q: float(np.percentile(a, q)) if len(a) else None)
        return {"steps": len(self.t), "inferences": len(self.inferences),
                "inference_ms_p50": p(lat, 50), "inference_ms_p99": p(lat, 99), "inference_ms_max": p(lat, 100),
                "late_inferences": sum(i["late"] for i in self.inferences), "held_steps": int(sum(self.held)),
                "clipped_steps": int(sum(self.clipped)), "period_ms_p50": p(period, 50), "period_ms_p99": p(period, 99),
                "overruns": self.overruns}

    def plot(self, path, joint: int = 0) -> None:
        """PNG timeline: joint ``joint``'s command and state (held steps shaded), and each inference as a
        bar from start to end (red: late)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        t = np.asarray(self.t)
        fig, (a, b) = plt.subplots(2, 1, figsize=(10, 5.5), sharex=True, gridspec_kw={"height_ratios": [2, 1]})
        a.step(t, [c[joint] for c in self.commands], where="post", label=f"command j{joint}")
        a.plot(t, [s[joint] for s in self.states], label=f"state j{joint}", alpha=0.7)
        held = np.r_[False, np.asarray(self.held, bool), False]
        edges = np.flatnonzero(np.diff(held.astype(int)))  # runs of held steps: [start, stop)
        for i0, i1 in zip(edges[::2], edges[1::2]):
            a.axvspan(t[i0], t[i1 - 1] + self.dt, color="red", alpha=0.15, lw=0)
        a.set_ylabel("rad")
        a.legend(loc="upper right", fontsize=8)
        a.set_title(f"control loop: dt {self.dt * 1e3:.0f} ms, re-plan every {self.replan_every} steps; red = watchdog hold")
        for k, inf in enumerate(self.inferences):
            end = inf["end"] if inf["end"] is not None else t[-1]
            b.barh(k % 4, end - inf["start"], left=inf["start"], color="red" if inf["late"] else "tab:green", height=0.8)
        s = self.stats()
        b.set_xlabel("time (s)")
        b.set_yticks([])
        b.set_ylabel("inference")
        b.set_title(f"inference p50 {s['inference_ms_p50'] or 0:.1f} ms, p99 {s['inference_ms_p99'] or 0:.1f} ms, "
                    f"{s['late_inferences']} late, {s['held_steps']} held steps", fontsize=9)
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)


class ControlLoop:
    """See the module docstring. ``run(steps)`` returns a :class:`ControlLog`."""

    def __init__(self, policy, robot, limits: JointLimits, *, dt: float = 0.02, replan_every: int = 4,
                 deadline_s: float | None = None, realtime: bool = True):
        if replan_every < 1 or dt <= 0:
            raise UserValueError("need replan_every >= 1 and dt > 0")
        self.policy, self.robot, self.limits, self.dt, self.k = policy, robot, limits, dt, replan_every
        self.deadline_s = deadline_s if deadline_s is not None else replan_every * dt
        self.realtime = realtime

    def run(self, steps: int) -> ControlLog:
        log = ControlLog(self.dt, self.k)
        pool = ThreadPoolExecutor(1, thread_name_prefix="beingh0-policy")
        pending: tuple[Future, dict] | None = None
        plan, plan_start = None, 0
        _, q0 = self.robot.observe()
        last = np.asarray(q0, np.float64)  # the last safe action: hold still at the start
        last_issue = -10**9
        t0 = time.perf_counter()
        try:
            for step in range(steps):
                tick = t0 + step * self.dt
                now = time.perf_counter()
                if self.realtime and now < tick:
                    time.sleep(tick - now)
                elif self.realtime and now > tick + 0.5 * self.dt:
                    log.overruns += 1
                now = time.perf_counter()
                # 1. a finished inference replaces the plan
                if pending is not None and pending[0].done():
                    fut, rec = pending
                    pending = None
                    rec["end"] = now - t0
                    rec["late"] = rec["late"] or (rec["end"] - rec["start"]) > self.deadline_s
                    try:
                        chunk = np.asarray(fut.result(), np.float64)
                        if chunk.ndim != 2 or chunk.shape[1] != self.robot.n or not np.all(np.isfinite(chunk)):
                            raise ValueError(f"policy returned {chunk.shape} / non-finite actions")
                        plan, plan_start, rec["used"] = chunk, rec["step"], True
                    except Exception as e:  # noqa: BLE001 -- a failed inference is a late one: hold
                        rec["error"] = repr(e)
                # 2. re-plan every k steps (one inference in flight at a time)
                if pending is None and step - last_issue >= self.k:
                    img, q = self.robot.observe()
                    rec = {"step": step, "start": time.perf_counter() - t0, "end": None, "late": False, "used": False}
                    log.inferences.append(rec)
                    pending = (pool.submit(self.policy, img, q), rec)
                    last_issue = step
                # 3. watchdog
                late = pending is not None and (now - t0) - pending[1]["start"] > self.deadline_s
                if late:
                    pending[1]["late"] = True
                idx = step - plan_start
                if plan is not None and idx < len(plan) and not late:
                    target, held = plan[idx], False
                else:
                    target, held = last, True
                cmd, clipped = self.limits.clip(target, last, self.dt)
                self.robot.command(cmd)
                last = cmd
                log.t.append(now - t0)
                log.commands.append(cmd)
                log.states.append(np.array(getattr(self.robot, "q", np.full(len(cmd), np.nan)), np.float64))
                log.held.append(held)
                log.clipped.append(clipped)
        finally:
            if pending is not None:
                pending[1]["end"] = None
            pool.shutdown(wait=False, cancel_futures=True)
        return log
