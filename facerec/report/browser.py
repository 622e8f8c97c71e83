"""Look at a report the way a person does: in a real browser (headless Chromium).

``check_images`` opens a copy of the page with a tiny inline script that, once the page has loaded,
writes how many ``<img>`` elements exist and how many failed to decode (``naturalWidth == 0``) into
the DOM; ``--dump-dom`` hands the DOM back. ``screenshot`` renders the page to a PNG. The report itself
carries no script: only the checked copy does.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from facerec.errors import FacerecError

BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome")
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--mute-audio",
)

_PROBE = """<script>
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var broken = imgs.filter(function (i) { return !i.complete || i.naturalWidth === 0; });
  var out = document.createElement("div");
  out.id = "facerec-image-check";
  out.setAttribute("data-total", String(imgs.length));
  out.setAttribute("data-broken", String(broken.length));
  out.setAttribute("data-broken-alts", broken.map(function (i) { return i.alt; }).join(" | "));
  document.body.appendChild(out);
});
</script>"""
_RESULT = re.compile(r'id="facerec-image-check"[^>]*?data-total="(\d+)"[^>]*?data-broken="(\d+)"'
                     r'[^>]*?data-broken-alts="([^"]*)"')


class BrowserError(FacerecError):
    """The browser could not be started or gave no answer."""


@dataclass(frozen=True)
class ImageCheck:
    total: int          # <img> elements in the page
    broken: int         # of which the browser could not decode
    broken_alts: str    # their alt texts, " | "-separated


def find_browser() -> str | None:
    """Path of a Chromium-family browser on PATH, or None."""
    for name in BROWSER_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def _run(browser: str, args: list[str], timeout: float) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="facerec-chromium-") as profile:
        cmd = [browser, *FLAGS, f"--user-data-dir={profile}", *args]
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise BrowserError(f"{browser} did not finish within {timeout:.0f} s: {exc}") from exc


def check_images(html_path: Path, browser: str | None = None, timeout: float = 120.0) -> ImageCheck:
    """Count the images of a page that a real browser failed to load."""
    browser = browser or find_browser()
    if browser is None:
        raise BrowserError(f"no browser found (looked for {', '.join(BROWSER_NAMES)}); install chromium")
    page = Path(html_path).read_text(encoding="utf-8")
    if "</body>" not in page:
        raise BrowserError(f"{html_path} has no </body>; is it an HTML page?")
    with tempfile.TemporaryDirectory(prefix="facerec-report-check-") as tmp:
        probe = Path(tmp) / "probe.html"
        probe.write_text(page.replace("</body>", _PROBE + "</body>", 1), encoding="utf-8")
        proc = _run(browser, ["--virtual-time-budget=10000", "--dump-dom", probe.as_uri()], timeout)
    match = _RESULT.search(proc.stdout)
    if match is None:
        raise BrowserError(
            f"{browser} returned no image count for {html_path} (exit {proc.returncode}); "
            f"stderr tail: {proc.stderr[-500:]!r}"
        )
    return ImageCheck(int(match.group(1)), int(match.group(2)), match.group(3))


def screenshot(html_path: Path, png_path: Path, width: int = 1280, height: int = 3000,
               browser: str | None = None, timeout: float = 120.0) -> Path:
    """Render the page at ``width`` x ``height`` CSS pixels into a PNG."""
    browser = browser or find_browser()
    if browser is None:
        raise BrowserError(f"no browser found (looked for {', '.join(BROWSER_NAMES)}); install chromium")
    png_path = Path(png_path).resolve()
    png_path.parent.mkdir(parents=True, exist_ok=True)
    proc = _run(browser, [f"--window-size={width},{height}", f"--screenshot={png_path}",
                          Path(html_path).resolve().as_uri()], timeout)
    if not png_path.exists():
        raise BrowserError(f"{browser} wrote no screenshot of {html_path} (exit {proc.returncode}): {proc.stderr[-500:]!r}")
    return png_path
