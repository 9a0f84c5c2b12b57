"""End to end on a small synthetic LeRobot folder: posttrain (2 steps), its report and plots, the saved
policy, `policy eval` on the held-out episode, and a second run that resumes instead of retraining."""
from dataclasses import replace

import pytest


@pytest.mark.slow
def test_posttrain_then_policy_eval(tmp_path, capsys):
    import torch

    from beingh0.cli.main import main
    from beingh0.data.synth.robot import robot_demos
    from beingh0.policy import BeingH0Policy, PolicyConfig
    from beingh0.policy.train import POSTTRAIN_TRAIN, PostTrainJob, posttrain_command

    torch.set_num_threads(1)
    data = robot_demos(tmp_path / "demos", episodes=3, seconds=1.0, size=(32, 32))
    job = PostTrainJob(val_fraction=0.3, batch_size=4, report_items=8, plot_episodes=1)
    cfg = PolicyConfig(chunk=4, num_queries=4, n_action_steps=2)
    train = replace(POSTTRAIN_TRAIN, steps=2, warmup_steps=0, progress=False, device="cpu")
    rep = posttrain_command(tmp_path / "run", [data], job=job, policy_config=cfg, train=train, report=False)
    assert rep["steps"] == 2 and rep["train_episodes"] == 2 and rep["heldout_episodes"] == 1
    assert rep["eval"]["split"] == "held-out episodes" and len(rep["eval"]["l1"]) == 30
    assert rep["eval"]["baseline"] is not None and (tmp_path / "run" / "loss.png").is_file()
    assert list((tmp_path / "run" / "eval").glob("episode_*.png"))
    pol = BeingH0Policy.from_pretrained(tmp_path / "run" / "policy")
    assert pol.spec.cameras == ("cam_high",) and pol.spec.delta_index is not None and "cam_high" in pol.spec.intrinsics
    assert pol.config.state_history == 2 and pol.config.state_to_queries and "observation.state.delta" in pol.spec.norm
    again = posttrain_command(tmp_path / "run", [data], job=job, policy_config=cfg, train=train, report=False)
    assert again["steps"] == 2  # resumed at the end: no step repeated
    assert main(["policy", "eval", str(tmp_path / "run" / "policy"), "--data", str(data), "--val-fraction", "0.3",
                 "--max-items", "6", "--out", str(tmp_path / "ev")]) == 0
    out = capsys.readouterr().out
    assert "held-out episodes" in out and "repeat state" in out and (tmp_path / "ev" / "eval.json").is_file()
