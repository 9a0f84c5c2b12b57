"""``beingh0 serve POLICY --runtime ...``: the policy server for the robot PC, or (``--simulate N``) the
real-time control loop against a simulated robot (beingh0.deploy)."""
from __future__ import annotations

from .common import user_path

HELP = "serve a policy over TCP (token, msgpack, timeouts), or run the control loop on a simulated robot"


def _serve(a):
    from ..core.errors import UserValueError
    from ..deploy.commands import parse_image_sizes, serve_command, simulate_command

    if a.simulate:
        if a.policy is None and not a.connect:
            raise UserValueError("--simulate needs POLICY or --connect HOST:PORT")
        simulate_command(a.policy, a.runtime, steps=a.simulate, dt=a.dt, replan_every=a.replan_every,
                         deadline_ms=a.deadline_ms, connect=a.connect, token=a.token, png=a.png, device=a.device,
                         json_path=a.json, image_sizes=parse_image_sizes(a.image_size), instruction=a.instruction)
        return
    if a.policy is None:
        raise UserValueError("serve needs POLICY: a checkpoint folder, standin[:PRESET], a .onnx or a .engine file")
    serve_command(a.policy, a.runtime, host=a.host, port=a.port, token=a.token, device=a.device, max_batch=a.max_batch,
                  image_sizes=parse_image_sizes(a.image_size), instruction=a.instruction)


def register(sub) -> None:
    from ..deploy.runtime import BACKENDS
    from ..deploy.server import DEFAULT_PORT
    from .cmd_export import policy_args

    s = sub.add_parser("serve", help=HELP, description="Serves the policy: loopback by default (another --host needs a "
                       "token), token authentication (--token or $BEINGH0_TOKEN), msgpack messages with explicit arrays "
                       "(never pickle), size limits and timeouts, health/metadata/infer; clients: beingh0.deploy.client. "
                       "With --simulate N it runs N steps of the control loop (chunks, re-planning, watchdog, limits) "
                       "against a simulated robot, with the runtime here or a server (--connect).")
    s.add_argument("policy", metavar="POLICY", nargs="?", default=None,
                   help="checkpoint folder, standin[:PRESET], model.onnx or model.engine")
    s.add_argument("--runtime", choices=BACKENDS, default=None,
                   help="inference backend (default: onnxruntime for .onnx, tensorrt for .engine, else eager)")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, loopback)")
    s.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"(default: {DEFAULT_PORT}; 0 picks a free one)")
    s.add_argument("--token", default=None, help="shared secret clients must send (default: $BEINGH0_TOKEN)")
    s.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="(default: cpu)")
    s.add_argument("--max-batch", type=int, default=8, help="requests batched into one inference (default: 8)")
    policy_args(s)
    g = s.add_argument_group("control loop on a simulated robot")
    g.add_argument("--simulate", type=int, default=0, metavar="STEPS", help="run the control loop for STEPS steps instead of serving")
    g.add_argument("--connect", default=None, metavar="HOST:PORT", help="with --simulate: infer through a running server")
    g.add_argument("--dt", type=float, default=0.02, help="control period in seconds (default: 0.02)")
    g.add_argument("--replan-every", type=int, default=None, help="steps between inferences (default: half the chunk)")
    g.add_argument("--deadline-ms", type=float, default=None, help="watchdog deadline (default: replan-every x dt)")
    g.add_argument("--png", type=user_path, default=None, help="write the timeline PNG here")
    g.add_argument("--json", type=user_path, default=None, help="write the latency statistics here")
    s.set_defaults(fn=_serve)
