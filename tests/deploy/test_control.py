"""Control loop against a simulated robot: re-planning, overlap, watchdog, limits, timeline."""
from __future__ import annotations

import time

import numpy as np
import pytest

from beingh0.core.errors import UserValueError
from beingh0.deploy.control import ControlLoop, JointLimits, SimulatedRobot

N, CHUNK, DT = 3, 8, 0.01


class SinePolicy:
    """Chunk of joint targets: a slow sine from the observed state; ``slow_calls`` sleep ``slow_s``."""

    def __init__(self, delay_s=0.002, slow_calls=(), slow_s=0.0, amplitude=0.5):
        self.delay_s, self.slow_calls, self.slow_s, self.amplitude = delay_s, set(slow_calls), slow_s, amplitude
        self.calls = 0
        self.active = 0
        self.max_active = 0

    def __call__(self, image, state):
        assert image.dtype == np.uint8 and image.ndim == 3 and state.shape == (N,)
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        i = self.calls
        self.calls += 1
        time.sleep(self.slow_s if i in self.slow_calls else self.delay_s)
        self.active -= 1
        ph = 0.3 * i + np.arange(CHUNK)[:, None] * 0.05
        return state[None] + self.amplitude * np.sin(ph + np.arange(N)[None])


def test_replans_every_k_overlapping_and_within_limits():
    lim = JointLimits.uniform(N, -0.4, 0.4, max_velocity=3.0)
    robot = SimulatedRobot(lim, DT, latency_steps=2)
    pol = SinePolicy(amplitude=2.0)  # asks for far more than the limits allow
    log = ControlLoop(pol, robot, lim, dt=DT, replan_every=4, deadline_s=0.07).run(60)  # slack for busy CI cores
    s = log.stats()
    assert s["steps"] == 60 and 13 <= s["inferences"] <= 16  # every 4 steps
    assert s["late_inferences"] == 0 and s["held_steps"] <= 2  # only before the first chunk
    assert s["clipped_steps"] > 0 and robot.violations == 0
    cmds = np.array(log.commands)
    assert np.all(cmds >= -0.4 - 1e-12) and np.all(cmds <= 0.4 + 1e-12)
    assert np.all(np.abs(np.diff(cmds, axis=0)) <= 3.0 * DT + 1e-12)
    # overlap: inference of chunk n+1 started while chunk n was executing (k=4 < chunk 8)
    used = [i for i in log.inferences if i["used"]]
    assert len(used) >= 12 and s["inference_ms_p50"] < 40 * DT * 1e3


def test_slow_runtime_triggers_watchdog_and_holds(tmp_path):
    lim = JointLimits.uniform(N, -1, 1, max_velocity=5.0)
    robot = SimulatedRobot(lim, DT)
    pol = SinePolicy(slow_calls={3}, slow_s=0.25)  # 25 steps late
    log = ControlLoop(pol, robot, lim, dt=DT, replan_every=4).run(70)
    s = log.stats()
    assert s["late_inferences"] >= 1 and s["held_steps"] >= 10
    cmds, held = np.array(log.commands), np.array(log.held)
    i = np.flatnonzero(held[5:])[0] + 5  # first hold after the start: the action repeats exactly
    assert np.array_equal(cmds[i], cmds[i - 1]) and np.array_equal(cmds[i + 5], cmds[i - 1])
    assert not held[-5:].any()  # recovered once inference is back on time
    assert robot.violations == 0 and pol.max_active == 1
    log.plot(tmp_path / "timeline.png")
    assert (tmp_path / "timeline.png").stat().st_size > 5000
    assert s["inference_ms_p99"] >= 200 > s["inference_ms_p50"]


def test_failing_policy_holds_and_limits_checked():
    lim = JointLimits.uniform(N, -1, 1)
    robot = SimulatedRobot(lim, DT)

    def bad(image, state):
        raise RuntimeError("inference crashed")

    log = ControlLoop(bad, robot, lim, dt=DT, replan_every=2).run(10)
    assert all(log.held) and all("error" in i for i in log.inferences[:-1])
    with pytest.raises(UserValueError, match="lower <= upper"):
        JointLimits([1.0], [0.0], [1.0])
    clipped, changed = lim.clip(np.array([5.0, 0, 0]), np.zeros(3), 0.1)
    assert changed and np.allclose(clipped, [0.2, 0, 0])
