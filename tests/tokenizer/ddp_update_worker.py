"""One rank of test_quantizer's torch.distributed test, run by torchrun (a script, so that the ranks
import the installed beingh0 and nothing from the test tree): ``torchrun --nproc_per_node 2
ddp_update_worker.py INPUTS.pt OUT_PREFIX`` with INPUTS.pt = {"x", "state"}."""
import sys

import torch
import torch.distributed as dist

from beingh0.tokenizer.quantizer import GroupedResidualVQ


def main(inputs: str, out: str) -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.set_num_threads(1)
    d = torch.load(inputs, weights_only=True)
    q = GroupedResidualVQ(2, 2, 8, 3, kmeans_init=False, restart_after=2, ema_decay=0.7).double().train()
    q.load_state_dict(d["state"])
    torch.manual_seed(100 + rank)                    # restarts draw differently on each rank
    for step in (1, 2, 3):
        q(d["x"].chunk(world)[rank])
        q.update()
        torch.save({k: v.clone() for k, v in q.state_dict().items()}, f"{out}.{rank}.{step}")
    dist.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:3])
