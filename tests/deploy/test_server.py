"""Policy server + client on loopback: auth, limits, hostile messages, disconnects, concurrency."""
from __future__ import annotations

import pickle
import random
import socket
import struct
import threading
import time

import msgpack
import numpy as np
import pytest

from beingh0.core.errors import UserValueError
from beingh0.deploy.client import PolicyClient, PolicyServerError
from beingh0.deploy.server import PolicyServer
from beingh0.deploy.wire import (
    WireError,
    decode_array,
    encode_array,
    frame,
    pack,
    unpack,
)

TOKEN = "s3cret-token"


@pytest.fixture
def server(fake_runtime):
    srv = PolicyServer(fake_runtime, port=0, token=TOKEN, max_message=1 << 20, read_timeout_s=2.0,
                       infer_timeout_s=2.0).start()
    yield srv
    srv.stop()


def _img(h=12, w=16, seed=0):
    return np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)


def _raw(sock, body: bytes) -> dict:
    sock.sendall(frame(body))
    hdr = _recv(sock, 4)
    (n,) = struct.unpack("!I", hdr)
    return unpack(_recv(sock, n))


def _recv(sock, n):
    buf = b""
    while len(buf) < n:
        c = sock.recv(n - len(buf))
        if not c:
            raise ConnectionError("closed")
        buf += c
    return buf


def test_wire_roundtrip_and_checks():
    for a in (np.arange(6, dtype=np.float32).reshape(2, 3), np.zeros((0, 4), np.int64), np.ones((2, 2, 3), np.uint8)):
        b = decode_array(unpack(pack({"a": encode_array(a)}))["a"])
        assert b.dtype == a.dtype and b.shape == a.shape and np.array_equal(a, b) and b.flags.writeable
    good = encode_array(np.ones((2, 3), np.float32))
    for bad, code in [({**good, "dtype": "object"}, "bad_array"), ({**good, "shape": [2, 4]}, "bad_array"),
                      ({**good, "shape": [-1, 6]}, "bad_array"), ({**good, "data": "x" * 24}, "bad_array"),
                      ({**good, "shape": [1 << 19, 1 << 19]}, "too_large"), ({**good, "nd": 2}, "bad_array"),
                      ([1, 2], "bad_array"), ({**good, "shape": [1] * 9}, "bad_array")]:
        with pytest.raises(WireError) as e:
            decode_array(bad, max_bytes=1 << 20)
        assert e.value.code == code
    with pytest.raises(WireError, match="extension"):
        unpack(msgpack.packb(msgpack.ExtType(1, b"x")))
    with pytest.raises(WireError):
        unpack(pickle.dumps({"op": "health"}))
    with pytest.raises(WireError, match="map"):
        unpack(pack([1, 2]))
    with pytest.raises(WireError):
        encode_array(np.array(["a"], dtype=object))


def test_health_metadata_infer(server, fake_runtime):
    with PolicyClient(port=server.port, token=TOKEN) as c:
        assert c.health()["status"] == "ok"
        meta = c.metadata()
        assert meta["spec"]["outputs"][0]["name"] == "actions" and meta["backend"] == "fake"
        img, st = _img(), np.array([1, 2, 3, 4], np.float32)
        a = c.infer(img, st)
        np.testing.assert_allclose(a, fake_runtime.predict(img, st), rtol=1e-6)
        assert a.shape == (3, 4) and a.dtype == np.float32


def test_auth_and_loopback_rules(server, fake_runtime):
    for tok in (None, "wrong", TOKEN + "x", ""):
        with PolicyClient(port=server.port, token=tok) as c, pytest.raises(PolicyServerError) as e:
            c.health()
        assert e.value.code == "unauthorized"
    with pytest.raises(UserValueError, match="needs a token"):
        PolicyServer(fake_runtime, host="0.0.0.0", port=0)
    with PolicyClient(port=server.port, token=TOKEN) as c, pytest.raises(PolicyServerError) as e:
        c.infer(_img(), np.zeros(5, np.float32))  # wrong state size
    assert e.value.code == "bad_input"


def _hostile(i: int, rng: random.Random) -> bytes:
    """One malformed or hostile frame body (kinds cycle)."""
    good = {"op": "infer", "token": TOKEN, "id": i, "image": encode_array(np.zeros((4, 4, 3), np.uint8)),
            "state": encode_array(np.zeros(4, np.float32))}
    k = i % 12
    if k == 0:
        return pack({**good, "token": f"bad{i}"})
    if k == 1:
        return pickle.dumps({"op": "infer", "token": TOKEN, "x": np.zeros(3)})
    if k == 2:
        return pack({**good, "image": {**good["image"], "dtype": "object", "data": pickle.dumps(object())}})
    if k == 3:
        return pack(good)[: rng.randrange(1, 40)]  # truncated msgpack
    if k == 4:
        return bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 64)))
    if k == 5:
        return pack({**good, "op": rng.choice([5, None, "rm -rf", ["infer"], b"infer"])})
    if k == 6:
        return pack({**good, "state": {**good["state"], "shape": [1 << 19, 1 << 19]}})
    if k == 7:
        return pack({**good, "image": encode_array(np.zeros((4, 4), np.uint8))})
    if k == 8:
        return pack({**good, "state": encode_array(np.full(4, np.nan, np.float32))})
    if k == 9:
        return pack([good])
    if k == 10:
        return msgpack.packb(msgpack.ExtType(42, b"\x00" * 8))
    return pack({**good, "id": {"nested": [1, 2, 3]}})


def test_ten_thousand_hostile_messages(server):
    t0 = time.perf_counter()
    n_threads, per = 4, 2500
    counts, failures = {}, []

    def worker(w):
        rng = random.Random(w)
        s = socket.create_connection(server.address, timeout=5)
        try:
            for j in range(per):
                i = w * per + j
                try:
                    r = _raw(s, _hostile(i, rng))
                except ConnectionError:
                    failures.append(i)
                    s = socket.create_connection(server.address, timeout=5)
                    continue
                if r.get("ok"):
                    failures.append(("accepted", i))
                code = r["error"]["code"]
                counts[code] = counts.get(code, 0) + 1
                if i % 12 == 0 and code != "unauthorized":
                    failures.append(("auth", i, code))
        finally:
            s.close()

    ts = [threading.Thread(target=worker, args=(w,)) for w in range(n_threads)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    assert not failures, failures[:5]
    assert sum(counts.values()) == n_threads * per and "internal" not in counts, counts
    assert {"unauthorized", "bad_request", "bad_array", "bad_input", "unknown_op", "too_large"} <= set(counts)
    # oversized frames and truncated frames: the server answers / drops that connection only
    for _ in range(20):
        with socket.create_connection(server.address, timeout=5) as s:
            s.sendall(struct.pack("!I", (1 << 20) + 1) + b"x" * 10)
            r = unpack(_recv(s, struct.unpack("!I", _recv(s, 4))[0]))
            assert r["error"]["code"] == "too_large"
        with socket.create_connection(server.address, timeout=5) as s:
            s.sendall(struct.pack("!I", 1000) + b"\x80" * 10)  # promises 1000 bytes, sends 10, leaves
    with PolicyClient(port=server.port, token=TOKEN) as c:
        assert c.infer(_img(), np.ones(4, np.float32)).shape == (3, 4)
        assert c.health()["errors"] >= n_threads * per
    assert time.perf_counter() - t0 < 30


def test_disconnect_mid_request_and_slow_sender(fake_runtime):
    fake_runtime.delay_s = 0.2
    with PolicyServer(fake_runtime, port=0, token=TOKEN, read_timeout_s=0.5, infer_timeout_s=2).start() as srv:
        body = pack({"op": "infer", "token": TOKEN, "image": encode_array(_img()), "state": encode_array(np.ones(4, np.float32))})
        with socket.create_connection(srv.address) as s:
            s.sendall(frame(body))  # ... and leave before the reply
        with socket.create_connection(srv.address) as s:  # half a frame, then silence: closed after read_timeout_s
            s.sendall(frame(body)[:20])
            s.settimeout(3)
            t0 = time.perf_counter()
            assert s.recv(10) == b""
            assert time.perf_counter() - t0 < 2.5
        with PolicyClient(port=srv.port, token=TOKEN) as c:
            assert c.infer(_img(), np.ones(4, np.float32)).shape == (3, 4)


def test_timeouts_both_sides(fake_runtime):
    fake_runtime.delay_s = 0.6
    with PolicyServer(fake_runtime, port=0, token=TOKEN, infer_timeout_s=0.2).start() as srv:
        with PolicyClient(port=srv.port, token=TOKEN) as c, pytest.raises(PolicyServerError) as e:
            c.infer(_img(), np.ones(4, np.float32))
        assert e.value.code == "timeout"
    with PolicyServer(fake_runtime, port=0, token=TOKEN, infer_timeout_s=5).start() as srv, \
            PolicyClient(port=srv.port, token=TOKEN, timeout_s=0.2) as c:
        with pytest.raises(TimeoutError):
            c.infer(_img(), np.ones(4, np.float32))
        time.sleep(0.6)
        assert c.health()["status"] == "ok"  # reconnects


def test_many_concurrent_clients_batch(fake_runtime):
    fake_runtime.delay_s = 0.01
    with PolicyServer(fake_runtime, port=0, token=TOKEN, max_batch=8, batch_wait_ms=2).start() as srv:
        errors, results = [], {}

        def client(k):
            try:
                with PolicyClient(port=srv.port, token=TOKEN) as c:
                    for j in range(5):
                        st = np.full(4, k + j, np.float32)
                        img = np.zeros((6, 6, 3), np.uint8)
                        a = c.infer(img, st)
                        assert np.allclose(a, k + j), (k, j, a[0, 0])
                    results[k] = True
            except Exception as e:  # noqa: BLE001
                errors.append(repr(e))

        ts = [threading.Thread(target=client, args=(k,)) for k in range(32)]
        t0 = time.perf_counter()
        [t.start() for t in ts]
        [t.join() for t in ts]
        assert not errors and len(results) == 32
        # batching: 160 requests in far fewer inference calls than 160 x 10 ms
        assert max(fake_runtime.batches) > 1
        assert time.perf_counter() - t0 < 1.6 * 1.0


def test_several_cameras(fake_runtime):
    fake_runtime.spec.meta["cameras"] = [{"name": "left"}, {"name": "wrist"}]
    with PolicyServer(fake_runtime, port=0, token=TOKEN).start() as srv, PolicyClient(port=srv.port, token=TOKEN) as c:
        imgs = {"left": _img(8, 8, 1), "wrist": _img(8, 8, 2)}
        a = c.infer(imgs, np.ones(4, np.float32))
        np.testing.assert_allclose(a, fake_runtime.predict(imgs, np.ones(4, np.float32)), rtol=1e-6)
        with pytest.raises(PolicyServerError, match="exactly the cameras"):
            c.infer({"left": _img()}, np.ones(4, np.float32))


def test_busy_when_full(fake_runtime):
    fake_runtime.delay_s = 0.3
    with PolicyServer(fake_runtime, port=0, token=TOKEN, max_clients=2).start() as srv:
        socks = [socket.create_connection(srv.address, timeout=3) for _ in range(2)]
        time.sleep(0.1)
        with socket.create_connection(srv.address, timeout=3) as s:  # the third client is turned away
            r = unpack(_recv(s, struct.unpack("!I", _recv(s, 4))[0]))
            assert r["error"]["code"] == "busy"
        [s.close() for s in socks]
    with PolicyServer(fake_runtime, port=0, token=TOKEN, max_queue=1, max_batch=1).start() as srv:
        codes = {}

        def one(k):
            try:
                with PolicyClient(port=srv.port, token=TOKEN) as c:
                    c.infer(_img(), np.ones(4, np.float32))
                    codes[k] = "ok"
            except PolicyServerError as e:
                codes[k] = e.code

        ts = [threading.Thread(target=one, args=(k,)) for k in range(3)]
        for t in ts:  # 1st: inferring (0.3 s), 2nd: queued, 3rd: the queue is full
            t.start()
            time.sleep(0.08)
        [t.join() for t in ts]
        assert sorted(codes.values()) == ["busy", "ok", "ok"], codes
