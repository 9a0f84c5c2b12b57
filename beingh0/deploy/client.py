"""A small client of the policy server (:mod:`.server`): blocking socket, timeouts, one request at a time.

    with PolicyClient(port=8765, token=TOKEN) as c:
        c.health(); spec = c.metadata()["spec"]
        actions = c.infer(image, state)       # (chunk, action_dim) float32

A reply with ``ok: false`` raises :class:`PolicyServerError` (``.code`` as the server sent it); a
server that does not answer within ``timeout_s`` raises ``TimeoutError`` and the connection is
dropped (the next call reconnects). One client per thread.
"""
from __future__ import annotations

import socket
import threading

import numpy as np

from .server import DEFAULT_PORT
from .wire import HEADER, MAX_MESSAGE, encode_array, frame, pack, unpack

__all__ = ["PolicyClient", "PolicyServerError"]


class PolicyServerError(RuntimeError):
    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code


class PolicyClient:
    def __init__(self, host: str = "127.0.0.1", port: int = DEFAULT_PORT, *, token: str | None = None,
                 timeout_s: float = 5.0, max_message: int = MAX_MESSAGE):
        self.host, self.port, self.token, self.timeout_s, self.max_message = host, port, token, timeout_s, max_message
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._next_id = 0

    def _connect(self) -> socket.socket:
        if self._sock is None:
            self._sock = socket.create_connection((self.host, self.port), timeout=self.timeout_s)
            self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self._sock

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _recv_exact(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self._sock.recv(min(n - len(buf), 1 << 20))
            if not chunk:
                raise ConnectionError("the policy server closed the connection")
            buf += chunk
        return bytes(buf)

    def request(self, msg: dict) -> dict:
        """Send one request map (token and id added), return the reply map (raises on ``ok: false``)."""
        with self._lock:
            self._next_id += 1
            msg = {**msg, "id": self._next_id}
            if self.token is not None:
                msg["token"] = self.token
            try:
                sock = self._connect()
                sock.sendall(frame(pack(msg)))
                (n,) = HEADER.unpack(self._recv_exact(HEADER.size))
                if n > self.max_message:
                    raise ConnectionError(f"reply of {n} bytes exceeds the limit")
                reply = unpack(self._recv_exact(n), max_message=self.max_message)
            except TimeoutError:
                self.close()
                raise TimeoutError(f"the policy server at {self.host}:{self.port} did not answer within {self.timeout_s} s") from None
            except BaseException:
                self.close()
                raise
        if not reply.get("ok"):
            err = reply.get("error") or {}
            raise PolicyServerError(str(err.get("code", "unknown")), str(err.get("message", "")))
        return reply

    def health(self) -> dict:
        return self.request({"op": "health"})

    def metadata(self) -> dict:
        return self.request({"op": "metadata"})

    def infer(self, image, state, input_ids=None) -> np.ndarray:
        msg = {"op": "infer", "state": encode_array(np.asarray(state, np.float32))}
        if isinstance(image, dict):  # several cameras
            msg["images"] = {str(k): encode_array(np.asarray(v, np.uint8)) for k, v in image.items()}
        else:
            msg["image"] = encode_array(np.asarray(image, np.uint8))
        if input_ids is not None:
            msg["input_ids"] = encode_array(np.asarray(input_ids, np.int64))
        from .wire import decode_array

        return decode_array(self.request(msg)["actions"], name="actions", max_bytes=self.max_message)
