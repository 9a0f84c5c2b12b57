"""One self-contained HTML page of a run: text, tables and figures (``report.html`` + the PNGs).

A :class:`Report` collects sections; :meth:`Report.write` writes ``DIR/report.html`` with every
figure embedded (base64 PNG: the page is one file that can be mailed or attached to an issue) and
copies each figure as a PNG beside it (``DIR/figures/NN-name.png``), so that the same figures can
be looked at without a browser. No JavaScript libraries, no network: the page renders offline.

The page carries a small inline script that counts the figures the browser actually decoded
(``naturalWidth > 0``) into ``<body data-figures-loaded=N>``; the headless-browser test
(:func:`check_in_browser`) reads that attribute from the DOM after load and checks the screenshot
is not blank.
"""
from __future__ import annotations

import base64
import html
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..core.errors import UserFileError, UserValueError

__all__ = ["Report", "Section", "find_browser", "check_in_browser", "BrowserCheck"]

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1100px;
     color:#1d2330;background:#fff;line-height:1.45;padding:0 1em}
h1{font-size:1.7em;margin-bottom:.2em} h2{font-size:1.25em;border-bottom:1px solid #d8dde6;padding-bottom:.2em;
   margin-top:2em} .meta{color:#5b6475;font-size:.9em}
table{border-collapse:collapse;margin:.8em 0;font-size:.92em} th,td{border:1px solid #d8dde6;padding:.3em .7em;
   text-align:right} th{background:#f2f4f8} td:first-child,th:first-child{text-align:left}
figure{margin:1em 0} figure img{max-width:100%;border:1px solid #e4e7ee} figcaption{color:#5b6475;font-size:.9em}
pre{background:#f6f8fa;padding:.6em;overflow-x:auto;font-size:.85em} .status-fail{color:#b3261e}
.status-ok{color:#1e7b34}
"""

_SCRIPT = """
window.addEventListener('load', function () {
  var imgs = document.querySelectorAll('figure img'), n = 0;
  for (var i = 0; i < imgs.length; i++) { if (imgs[i].complete && imgs[i].naturalWidth > 0) n++; }
  document.body.setAttribute('data-figures-loaded', String(n));
});
"""


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if v != v:
            return "n/a"
        a = abs(v)
        return f"{v:,.0f}" if a >= 1000 else f"{v:.2f}" if a >= 1 else f"{v:.3g}"
    return "n/a" if v is None else str(v)


@dataclass
class Section:
    """One titled part of the page: paragraphs, tables and figures, in the order added."""

    title: str
    items: list = field(default_factory=list)

    def text(self, paragraph: str) -> "Section":
        self.items.append(("text", str(paragraph)))
        return self

    def code(self, text: str) -> "Section":
        self.items.append(("code", str(text)))
        return self

    def table(self, rows: Sequence[dict] | Sequence[Sequence], header: Sequence[str] | None = None,
              caption: str | None = None) -> "Section":
        """A table from a list of dicts (keys of the first row are the header) or of sequences + ``header``."""
        rows = list(rows)
        if rows and isinstance(rows[0], dict):
            header = list(header or rows[0].keys())
            body = [[r.get(h) for h in header] for r in rows]
        else:
            if header is None:
                raise UserValueError("a table of sequences needs a header")
            header = list(header)
            body = [list(r) for r in rows]
            bad = [i for i, r in enumerate(body) if len(r) != len(header)]
            if bad:
                raise UserValueError(f"table row {bad[0]} has {len(body[bad[0]])} cells, the header {len(header)}")
        self.items.append(("table", (header, body, caption)))
        return self

    def figure(self, png, caption: str = "") -> "Section":
        """A PNG file (path); it must exist and be a PNG when added (a missing figure is an error here,
        not a broken image on the page)."""
        p = Path(png)
        if not p.is_file():
            raise UserFileError(f"figure {p} does not exist; the stage that makes it did not run or failed")
        with open(p, "rb") as f:
            if f.read(8) != _PNG_MAGIC:
                raise UserValueError(f"figure {p} is not a PNG file")
        self.items.append(("figure", (p, caption)))
        return self


class Report:
    """A run's report page. ``Report(title, meta=...)``, ``.section(title)`` -> :class:`Section`,
    ``.write(dir)`` -> path of ``report.html``."""

    def __init__(self, title: str, meta: str = ""):
        self.title, self.meta = str(title), str(meta)
        self.sections: list[Section] = []

    def section(self, title: str) -> Section:
        s = Section(str(title))
        self.sections.append(s)
        return s

    @property
    def figures(self) -> list[Path]:
        return [it[1][0] for s in self.sections for it in s.items if it[0] == "figure"]

    def write(self, out_dir) -> Path:
        out = Path(out_dir)
        figdir = out / "figures"
        figdir.mkdir(parents=True, exist_ok=True)
        esc = html.escape
        parts = ["<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">",
                 f"<title>{esc(self.title)}</title><style>{_CSS}</style><script>{_SCRIPT}</script></head>",
                 "<body data-figures-loaded=\"0\">", f"<h1>{esc(self.title)}</h1>"]
        if self.meta:
            parts.append(f"<p class=\"meta\">{esc(self.meta)}</p>")
        k = 0
        for s in self.sections:
            parts.append(f"<h2>{esc(s.title)}</h2>")
            for kind, v in s.items:
                if kind == "text":
                    parts.append(f"<p>{esc(v)}</p>")
                elif kind == "code":
                    parts.append(f"<pre>{esc(v)}</pre>")
                elif kind == "table":
                    header, body, caption = v
                    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
                    head = "".join(f"<th>{esc(str(h))}</th>" for h in header)
                    rows = "".join("<tr>" + "".join(f"<td>{esc(_fmt(c))}</td>" for c in r) + "</tr>" for r in body)
                    parts.append(f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
                else:
                    path, caption = v
                    k += 1
                    name = f"{k:02d}-{path.name}"
                    if path.resolve() != (figdir / name).resolve():
                        shutil.copyfile(path, figdir / name)
                    data = base64.b64encode(path.read_bytes()).decode("ascii")
                    parts.append(f"<figure><img alt=\"{esc(caption or path.stem)}\" src=\"data:image/png;base64,{data}\">"
                                 f"<figcaption>{esc(caption)} <a href=\"figures/{esc(name)}\">({esc(name)})</a>"
                                 "</figcaption></figure>")
        parts.append("</body></html>")
        page = out / "report.html"
        tmp = out / "report.html.tmp"
        tmp.write_text("\n".join(parts), encoding="utf-8")
        os.replace(tmp, page)
        return page


# ----------------------------------------------------------------------------- headless browser check
_BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# No background traffic: this machine's network is closed, and a report page needs none.
_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
          "--disable-background-networking", "--disable-component-update", "--disable-sync",
          "--hide-scrollbars", "--virtual-time-budget=5000")


def find_browser() -> str | None:
    """Path of an installed Chromium or Chrome (``BEINGH0_BROWSER`` overrides), or None."""
    env = os.environ.get("BEINGH0_BROWSER")
    if env:
        return env if Path(env).is_file() else None
    for name in _BROWSERS:
        p = shutil.which(name)
        if p:
            return p
    return None


@dataclass(frozen=True)
class BrowserCheck:
    browser: str
    figures_expected: int
    figures_loaded: int
    screenshot: Path
    nonblank_fraction: float
    """Fraction of screenshot pixels that differ from the page background."""

    @property
    def ok(self) -> bool:
        return self.figures_loaded == self.figures_expected and self.nonblank_fraction > 0.01


def check_in_browser(page, screenshot=None, *, browser: str | None = None, width: int = 1200, height: int = 2400,
                     timeout: float = 60.0) -> BrowserCheck:
    """Open ``page`` in headless Chromium: count the figures it decoded (from the DOM after load) and take
    a screenshot; raise ``UserFileError`` when no browser is installed."""
    import re

    import numpy as np
    from matplotlib import image as mpimg

    browser = browser or find_browser()
    if browser is None:
        raise UserFileError("no Chromium found; install it (Debian: apt-get install chromium) or set BEINGH0_BROWSER")
    page = Path(page).resolve()
    text = page.read_text(encoding="utf-8")
    expected = text.count("<figure><img")
    shot = Path(screenshot) if screenshot else page.with_suffix(".png")
    with tempfile.TemporaryDirectory(prefix="beingh0-browser-") as prof:
        common = [browser, *_FLAGS, f"--user-data-dir={prof}", f"--window-size={width},{height}"]
        dom = subprocess.run([*common, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=timeout)
        subprocess.run([*common, f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=timeout)
    m = re.search(r'data-figures-loaded="(\d+)"', dom.stdout)
    if m is None:
        raise RuntimeError(f"{browser} returned no DOM for {page} (exit {dom.returncode}): {dom.stderr[-400:]}")
    if not shot.is_file():
        raise RuntimeError(f"{browser} wrote no screenshot {shot}")
    img = np.asarray(mpimg.imread(shot))[..., :3]
    bg = img[0, 0]
    nonblank = float((np.abs(img - bg).sum(-1) > 0.05).mean())
    return BrowserCheck(browser, expected, int(m.group(1)), shot, nonblank)
