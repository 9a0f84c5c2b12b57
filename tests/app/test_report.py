"""The run report: one HTML page with embedded figures, the same PNGs beside it, checked in a browser."""
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from beingh0.app.report import Report, check_in_browser, find_browser  # noqa: E402
from beingh0.core.errors import UserError  # noqa: E402


def _png(path, seed):
    fig, ax = plt.subplots(figsize=(3, 2), dpi=60)
    ax.plot([0, 1, 2], [seed, seed + 2, seed - 1])
    fig.savefig(path)
    plt.close(fig)
    return path


@pytest.fixture
def page(tmp_path):
    r = Report("demo run", meta="tiny, 2-core CPU")
    s = r.section("tokenizer")
    s.text("reconstruction <b>in</b> mm").table([{"set": "synthetic", "mpjpe": 9.3}, {"set": "real", "mpjpe": 21.6}])
    s.figure(_png(tmp_path / "loss.png", 1), "loss")
    r.section("policy").table([[1, 2.5]], header=["dim", "L1"]).figure(_png(tmp_path / "traj.png", 2), "trajectories")
    return r, r.write(tmp_path / "report")


def test_page_embeds_every_figure_and_copies_the_pngs(page, tmp_path):
    r, path = page
    text = path.read_text()
    assert text.count("data:image/png;base64,") == 2 == len(r.figures)
    assert "&lt;b&gt;in&lt;/b&gt;" in text and "<b>in</b>" not in text  # text is escaped
    assert re.search(r"<td>synthetic</td><td>9.30</td>", text)
    pngs = sorted(p.name for p in (tmp_path / "report" / "figures").iterdir())
    assert pngs == ["01-loss.png", "02-traj.png"]
    assert (tmp_path / "report" / "figures" / "01-loss.png").read_bytes() == (tmp_path / "loss.png").read_bytes()


def test_missing_or_non_png_figure_is_a_one_line_error(tmp_path):
    s = Report("x").section("y")
    with pytest.raises(UserError, match="does not exist"):
        s.figure(tmp_path / "nope.png")
    (tmp_path / "a.png").write_text("not a png")
    with pytest.raises(UserError, match="not a PNG"):
        s.figure(tmp_path / "a.png")
    with pytest.raises(UserError, match="header"):
        s.table([[1, 2]])
    with pytest.raises(UserError, match="cells"):
        s.table([[1, 2]], header=["a"])


@pytest.mark.skipif(find_browser() is None, reason="Chromium is not installed (Debian: apt-get install chromium)")
def test_page_renders_in_headless_chromium(page, tmp_path):
    _, path = page
    chk = check_in_browser(path, tmp_path / "shot.png", height=1400)
    assert chk.figures_expected == 2
    assert chk.figures_loaded == 2, "the browser did not decode every embedded figure"
    assert chk.nonblank_fraction > 0.01 and chk.ok
