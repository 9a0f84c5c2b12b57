"""The policy server for the robot PC: asyncio connections, one inference worker, safe messages.

* Listens on loopback by default; another address needs a token (refused otherwise).
* Token authentication on every request (``hmac.compare_digest``), message size limit, the
  :mod:`.wire` format (msgpack with explicit arrays; never pickle).
* Timeouts: idle connections and slow senders are closed (``read_timeout_s``); a request whose
  inference has not finished within ``infer_timeout_s`` gets a ``timeout`` error.
* Concurrency: connections are served by an asyncio loop in a background thread; inference runs in
  ONE worker thread that takes requests from a bounded queue and batches those of equal image size
  (up to ``max_batch``), so slow or many clients never block inference and inference never blocks
  I/O. A full queue answers ``busy``.
* Operations: ``health`` (status, uptime, queue depth, served counts), ``metadata`` (the policy spec,
  the backend, versions), ``infer`` (``image`` uint8 (H, W, 3), ``state`` (state_dim,), optional
  ``input_ids``; returns ``actions`` (chunk, action_dim) float32).

Request: ``{"op", "token", "id"?, "image"?, "state"?, "input_ids"?}``. Reply: ``{"ok": true, "id", ...}``
or ``{"ok": false, "id", "error": {"code", "message"}}`` with code one of ``bad_request``,
``unauthorized``, ``too_large``, ``bad_array``, ``bad_input``, ``unknown_op``, ``busy``, ``timeout``,
``internal``. A policy with several cameras (``spec.meta['cameras']``) takes ``images``
``{camera: uint8 (H, W, 3)}`` instead of ``image``.
"""
from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
import queue
import threading
import time
import traceback

import numpy as np

from ..core.errors import UserError, UserValueError
from .wire import (
    HEADER,
    MAX_MESSAGE,
    WireError,
    decode_array,
    encode_array,
    frame,
    pack,
    unpack,
)

__all__ = ["DEFAULT_PORT", "PolicyServer"]

DEFAULT_PORT = 8765
log = logging.getLogger("beingh0.deploy.server")
_MAX_IMAGE_SIDE = 4096


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _signature(r) -> tuple:
    """Requests with equal signatures batch together (same image sizes, ids given or not)."""
    img = tuple(sorted((k, v.shape) for k, v in r.image.items())) if isinstance(r.image, dict) else r.image.shape
    return img, r.ids is None


class _Request:
    __slots__ = ("fut", "ids", "image", "loop", "state", "t0")

    def __init__(self, image, state, ids, fut, loop):
        self.image, self.state, self.ids, self.fut, self.loop = image, state, ids, fut, loop
        self.t0 = time.perf_counter()


class PolicyServer:
    """Serve a :class:`.runtime.PolicyRuntime` (see the module docstring). ``start()`` returns once
    listening; ``address`` is (host, port); ``stop()`` closes everything."""

    def __init__(self, runtime, *, host: str = "127.0.0.1", port: int = DEFAULT_PORT, token: str | None = None,
                 max_message: int = MAX_MESSAGE, read_timeout_s: float = 10.0, infer_timeout_s: float = 5.0,
                 max_batch: int = 8, batch_wait_ms: float = 1.0, max_queue: int = 64, max_clients: int = 128):
        if not _is_loopback(host) and not token:
            raise UserValueError(f"serving on {host} (not loopback) needs a token; pass --token or set BEINGH0_TOKEN")
        self.runtime, self.host, self.port = runtime, host, port
        self._token = token.encode() if token else None
        self.max_message, self.read_timeout_s, self.infer_timeout_s = max_message, read_timeout_s, infer_timeout_s
        self.max_batch, self.batch_wait_s, self.max_clients = max_batch, batch_wait_ms / 1e3, max_clients
        self._q: queue.Queue = queue.Queue(max_queue)
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server = None
        self._threads: list[threading.Thread] = []
        self._clients = 0
        self._t_start = time.time()
        self.stats = {"requests": 0, "errors": 0, "inferences": 0, "batches": 0, "connections": 0}
        self._error: BaseException | None = None
        self._meta = self._metadata()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> PolicyServer:
        if self._threads:
            return self
        w = threading.Thread(target=self._worker, name="beingh0-infer", daemon=True)
        s = threading.Thread(target=self._serve_thread, name="beingh0-server", daemon=True)
        self._threads = [w, s]
        w.start()
        s.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error
        return self

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    def stop(self) -> None:
        self._stop.set()
        if self._loop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        for t in self._threads:
            t.join(5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def serve_forever(self) -> None:
        self.start()
        try:
            while not self._stop.wait(0.5):
                pass
        finally:
            self.stop()

    def _serve_thread(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            self._server = loop.run_until_complete(asyncio.start_server(
                self._connection, self.host, self.port, limit=HEADER.size + self.max_message + 1024))
            self.port = self._server.sockets[0].getsockname()[1]
        except OSError as e:
            self._error = UserValueError(f"cannot listen on {self.host}:{self.port}: {e.strerror or e}")
            self._ready.set()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            self._server.close()
            for task in asyncio.all_tasks(loop):
                task.cancel()
            loop.run_until_complete(asyncio.sleep(0))
            loop.close()

    # ------------------------------------------------------------------ connections
    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.stats["connections"] += 1
        if self._clients >= self.max_clients:
            await self._send(writer, self._error_reply(None, "busy", f"more than {self.max_clients} clients"))
            writer.close()
            return
        self._clients += 1
        try:
            while not self._stop.is_set():
                try:
                    hdr = await asyncio.wait_for(reader.readexactly(HEADER.size), self.read_timeout_s)
                except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError):
                    break  # closed, idle or gone
                (n,) = HEADER.unpack(hdr)
                if n > self.max_message:
                    self.stats["errors"] += 1
                    await self._send(writer, self._error_reply(None, "too_large",
                                                               f"message of {n} bytes exceeds the limit of {self.max_message}"))
                    break  # the stream cannot be resynchronised without reading the body
                try:
                    body = await asyncio.wait_for(reader.readexactly(n), self.read_timeout_s)
                except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError):
                    break  # truncated frame or a sender too slow: drop the connection
                reply = await self._handle(body)
                if not await self._send(writer, reply):
                    break
        except asyncio.CancelledError:
            pass
        except Exception:  # noqa: BLE001 -- a bug in one connection never takes the server down
            log.error("connection handler failed:\n%s", traceback.format_exc())
        finally:
            self._clients -= 1
            try:
                writer.close()
            except Exception as e:  # noqa: BLE001 -- the peer is gone; nothing left to do
                log.debug("closing a connection: %r", e)

    async def _send(self, writer, reply: dict) -> bool:
        try:
            writer.write(frame(pack(reply)))
            await asyncio.wait_for(writer.drain(), self.read_timeout_s)
            return True
        except (ConnectionError, asyncio.TimeoutError, RuntimeError):
            return False

    def _error_reply(self, rid, code: str, message: str) -> dict:
        return {"ok": False, "id": rid, "error": {"code": code, "message": message[:500]}}

    async def _handle(self, body: bytes) -> dict:
        self.stats["requests"] += 1
        rid = None
        try:
            msg = unpack(body, max_message=self.max_message)
            rid = msg.get("id")
            if not (rid is None or (type(rid) is int and -2**63 <= rid < 2**63) or (isinstance(rid, str) and len(rid) <= 128)):
                rid = None
                raise WireError("bad_request", "id must be an int or a short string")
            token = msg.get("token")
            if self._token is not None and (not isinstance(token, str)
                                            or not hmac.compare_digest(token.encode(), self._token)):
                raise WireError("unauthorized", "missing or wrong token")
            op = msg.get("op")
            if op == "health":
                return {"ok": True, "id": rid, "status": "ok", "uptime_s": time.time() - self._t_start,
                        "queue": self._q.qsize(), "clients": self._clients, **{k: v for k, v in self.stats.items()}}
            if op == "metadata":
                return {"ok": True, "id": rid, **self._meta}
            if op == "infer":
                return await self._infer(msg, rid)
            raise WireError("unknown_op", f"unknown op {str(op)[:32]!r}; use health, metadata or infer")
        except WireError as e:
            self.stats["errors"] += 1
            return self._error_reply(rid, e.code, str(e))
        except Exception:  # noqa: BLE001
            self.stats["errors"] += 1
            log.error("request failed:\n%s", traceback.format_exc())
            return self._error_reply(rid, "internal", "internal server error (see the server log)")

    def _check_image(self, arr, name: str) -> np.ndarray:
        image = decode_array(arr, name=name, max_bytes=self.max_message)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or not (
                1 <= image.shape[0] <= _MAX_IMAGE_SIDE and 1 <= image.shape[1] <= _MAX_IMAGE_SIDE):
            raise WireError("bad_input", f"{name} must be uint8 (H, W, 3) with sides 1..{_MAX_IMAGE_SIDE}, "
                                         f"got {image.dtype} {list(image.shape)}")
        return image

    async def _infer(self, msg: dict, rid) -> dict:
        spec = self.runtime.spec
        if msg.get("images") is not None:  # several cameras: {name: image}
            cams = [c["name"] for c in spec.meta.get("cameras", [])]
            imgs = msg["images"]
            if not isinstance(imgs, dict) or sorted(imgs) != sorted(cams):
                raise WireError("bad_input", f"images must be a map with exactly the cameras {cams}")
            image = {k: self._check_image(v, f"image {k}") for k, v in imgs.items()}
        else:
            image = self._check_image(msg.get("image"), "image")
        state = decode_array(msg.get("state"), name="state", max_bytes=self.max_message)
        want = tuple(spec.input("state").shape[1:])  # (S,) or a history (H, S)
        sd = want[-1]
        if state.shape not in ((sd,), want) or state.dtype.kind != "f":
            raise WireError("bad_input", f"state must be float ({sd},){'' if len(want) == 1 else f' or a history {list(want)}'}, "
                                         f"got {state.dtype} {list(state.shape)}")
        state = state.astype(np.float32)
        if not np.all(np.isfinite(state)):
            raise WireError("bad_input", "state has NaN or infinite values")
        ids = None
        if msg.get("input_ids") is not None:
            ids = decode_array(msg["input_ids"], name="input_ids", max_bytes=self.max_message)
            want = spec.input("input_ids").shape[1] if "input_ids" in spec.input_names else None
            if ids.dtype.kind not in "iu" or ids.shape != (want,):
                raise WireError("bad_input", f"input_ids must be int ({want},), got {ids.dtype} {list(ids.shape)}")
            ids = ids.astype(np.int64)
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        try:
            self._q.put_nowait(_Request(image, state, ids, fut, loop))
        except queue.Full:
            raise WireError("busy", "the inference queue is full; retry later") from None
        try:
            actions, info = await asyncio.wait_for(asyncio.shield(fut), self.infer_timeout_s)
        except asyncio.TimeoutError:
            fut.cancel()
            raise WireError("timeout", f"inference did not finish within {self.infer_timeout_s} s") from None
        if isinstance(actions, WireError):
            raise actions
        return {"ok": True, "id": rid, "actions": encode_array(actions.astype(np.float32)), **info}

    # ------------------------------------------------------------------ inference worker
    def _worker(self) -> None:
        while not self._stop.is_set():
            try:
                first = self._q.get(timeout=0.05)
            except queue.Empty:
                continue
            batch = [first]
            deadline = time.perf_counter() + self.batch_wait_s
            held = []
            while len(batch) < self.max_batch:
                try:
                    r = self._q.get(timeout=max(0.0, deadline - time.perf_counter()))
                except queue.Empty:
                    break
                same = _signature(r) == _signature(first)
                (batch if same else held).append(r)
            for r in held:  # other image sizes: next round
                try:
                    self._q.put_nowait(r)
                except queue.Full:
                    self._resolve(r, WireError("busy", "the inference queue is full; retry later"), {})
            batch = [r for r in batch if not r.fut.cancelled()]
            if not batch:
                continue
            t0 = time.perf_counter()
            try:
                ids = None if batch[0].ids is None else np.stack([r.ids for r in batch])
                if isinstance(batch[0].image, dict):
                    images = {k: np.stack([r.image[k] for r in batch]) for k in batch[0].image}
                else:
                    images = np.stack([r.image for r in batch])
                want = tuple(self.runtime.spec.input("state").shape[1:])
                # (S,) states of a history policy stand for a robot at rest: the state repeated H times
                states = np.stack([np.broadcast_to(r.state, want) if r.state.shape != want else r.state for r in batch])
                out = self.runtime.predict(images, states, ids)
            except UserError as e:
                for r in batch:
                    self._resolve(r, WireError("bad_input", str(e)), {})
                continue
            except Exception:  # noqa: BLE001
                log.error("inference failed:\n%s", traceback.format_exc())
                for r in batch:
                    self._resolve(r, WireError("internal", "inference failed (see the server log)"), {})
                continue
            ms = (time.perf_counter() - t0) * 1e3
            self.stats["inferences"] += len(batch)
            self.stats["batches"] += 1
            for r, a in zip(batch, out):
                self._resolve(r, a, {"infer_ms": ms, "batch": len(batch),
                                     "server_ms": (time.perf_counter() - r.t0) * 1e3})

    @staticmethod
    def _resolve(r: _Request, value, info: dict) -> None:
        def set_():
            if not r.fut.done():
                r.fut.set_result((value, info))
        try:
            r.loop.call_soon_threadsafe(set_)
        except RuntimeError:  # loop closed (server stopping)
            pass

    def _metadata(self) -> dict:
        import torch

        from .. import __version__

        return {"spec": self.runtime.spec.to_dict(), "backend": self.runtime.backend, "runtime": self.runtime.describe,
                "versions": {"beingh0": __version__, "torch": torch.__version__}, "max_message": self.max_message,
                "max_batch": self.max_batch}
