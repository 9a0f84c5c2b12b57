"""``beingh0 align``'s input loading: a folder, an existing file as --out, a non-image, a huge image
header, broken keypoint files — one-line UserErrors from the library, checked before decoding."""
import struct
import zlib

import numpy as np
import pytest

from beingh0.align.viz import (MAX_IMAGE_PIXELS, MAX_IMAGE_SIDE, align_image_file, check_image_size, load_frame,
                               load_keypoints)
from beingh0.core.errors import UserError, UserFileError, UserValueError


def _png_header_only(path, width, height):
    """A PNG whose IHDR declares width x height (RGB, 8 bit), followed by a garbage IDAT: opening it
    reads the size; decoding it would fail (or, for a real 12000x12000 PNG, take 3.3 GB)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"\0" * 64) + chunk(b"IEND", b""))
    return path


@pytest.fixture
def image(tmp_path):
    from PIL import Image

    p = tmp_path / "x.png"
    Image.fromarray(np.full((30, 40, 3), 128, np.uint8)).save(p)
    return p


def _one_line(e):
    assert isinstance(e.value, UserError) and "\n" not in str(e.value), str(e.value)
    return str(e.value)


def test_image_size_caps():
    check_image_size(7680, 4320)                                   # 8K UHD is fine
    for w, h in ((12000, 12000), (MAX_IMAGE_SIDE + 1, 10), (10, 20000), (0, 10)):
        with pytest.raises(UserValueError):
            check_image_size(w, h)
    assert MAX_IMAGE_SIDE == 16384 and MAX_IMAGE_PIXELS == 100_000_000


def test_huge_image_refused_from_its_header(tmp_path):
    p = _png_header_only(tmp_path / "big.png", 12000, 12000)
    assert p.stat().st_size < 200
    with pytest.raises(UserValueError, match=r"big\.png is 12000x12000 pixels; no camera frame is that large "
                                             r"\(limit 16384 px a side and 100 MPix\)") as e:
        load_frame(p)
    _one_line(e)
    with pytest.raises(UserValueError, match="20000x100 pixels"):
        load_frame(_png_header_only(tmp_path / "wide.png", 20000, 100))
    with pytest.raises(UserValueError, match=r"larger than 100 MPix|pixels; no camera frame"):   # Pillow's own bomb check
        load_frame(_png_header_only(tmp_path / "bomb.png", 16000, 16000))


def test_align_path_mistakes(tmp_path, image):
    with pytest.raises(UserFileError, match="is a folder; pass one file") as e:
        align_image_file(tmp_path, "40,40,20,15", out_dir=tmp_path / "o")
    _one_line(e)
    (tmp_path / "taken").write_text("x")
    with pytest.raises(UserValueError, match=r"--out .*taken is a file; pass a folder") as e:
        align_image_file(image, "40,40,20,15", out_dir=tmp_path / "taken")
    _one_line(e)
    with pytest.raises(UserValueError, match="a part of that path is a file"):
        align_image_file(image, "40,40,20,15", out_dir=tmp_path / "taken" / "sub", backend="reference")
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(UserValueError, match=r"notes\.png is not an image Pillow can read") as e:
        align_image_file(tmp_path / "notes.png", "40,40,20,15", out_dir=tmp_path / "o")
    _one_line(e)
    data = image.read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) - 30])
    with pytest.raises(UserValueError, match=r"cut\.png: the image data is unreadable"):
        load_frame(tmp_path / "cut.png")
    with pytest.raises(UserFileError, match="does not exist"):
        load_frame(tmp_path / "missing.png")
    with pytest.raises(UserValueError, match="--frame must be an integer >= 0"):
        load_frame(image, frame=-1)
    for size in (0, 20000):
        with pytest.raises(UserValueError, match="--size"):
            align_image_file(image, "40,40,20,15", out_dir=tmp_path / "o", size=size)
    with pytest.raises(UserValueError, match="intrinsics"):
        align_image_file(image, "40,40,20", out_dir=tmp_path / "o")
    assert not (tmp_path / "o").exists()          # nothing written for a refused call


def test_keypoint_file_mistakes(tmp_path):
    (tmp_path / "d.npy").mkdir()
    (tmp_path / "empty.npy").write_bytes(b"")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.save(tmp_path / "shape.npy", np.zeros((21, 4)))
    np.save(tmp_path / "full.npy", np.zeros((21, 2)))
    data = (tmp_path / "full.npy").read_bytes()
    (tmp_path / "trunc.npy").write_bytes(data[:-40])
    cases = {"d.npy": (UserFileError, "is a folder"), "missing.npy": (UserFileError, "does not exist"),
             "empty.npy": (UserValueError, "not a readable .npy"), "obj.npy": (UserValueError, r"\(21, 2\) pixels"),
             "shape.npy": (UserValueError, r"got \(21, 4\)"), "trunc.npy": (UserValueError, "data must be complete")}
    for name, (cls, msg) in cases.items():
        with pytest.raises(cls, match=msg) as e:
            load_keypoints(tmp_path / name)
        _one_line(e)
    np.save(tmp_path / "one.npy", np.ones((1, 21, 3), np.float32))
    assert load_keypoints(tmp_path / "one.npy").shape == (21, 3)


def test_cli_prints_one_line(tmp_path, image, capsys):
    """Through ``beingh0 align``: the issue's IsADirectoryError / FileExistsError tracebacks are now messages."""
    from beingh0.cli.main import main

    assert main(["align", str(tmp_path), "--intrinsics", "40,40,20,15"]) == 2
    assert "is a folder" in capsys.readouterr().err
    assert main(["align", str(image), "--intrinsics", "40,40,20,15", "--out", str(image)]) == 2
    err = capsys.readouterr().err
    assert "is a file; pass a folder" in err and err.count("\n") == 1
