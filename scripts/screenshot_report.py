"""Render a run's report.html in headless Chromium (offline) to a PNG and check it is not blank.

usage: python scripts/screenshot_report.py runs/<id>/report.html [out.png] [--height 4200]

Needs Debian's chromium (`apt-get install chromium`). The network flags keep it from
trying to reach the internet; the report itself loads nothing from outside.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def screenshot(html: Path, png: Path, *, width: int = 1280, height: int = 4200, timeout: float = 120) -> None:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        raise SystemExit("chromium not found: apt-get install chromium")
    with tempfile.TemporaryDirectory() as profile:
        cmd = [
            exe,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            f"--screenshot={png.resolve()}",
            f"--window-size={width},{height}",
            html.resolve().as_uri(),
        ]
        subprocess.run(cmd, check=True, capture_output=True, timeout=timeout)


def check(png: Path) -> int:
    """Distinct colours in the screenshot: a blank or broken page has a handful, a report with plots thousands."""
    from PIL import Image

    img = Image.open(png).convert("RGB")
    colours = img.getcolors(maxcolors=1 << 20)
    return len(colours) if colours is not None else 1 << 20


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("html", type=Path)
    p.add_argument("png", type=Path, nargs="?")
    p.add_argument("--height", type=int, default=4200)
    args = p.parse_args(argv)
    png = args.png or args.html.with_suffix(".png")
    screenshot(args.html, png, height=args.height)
    n = check(png)
    print(f"{png}: {png.stat().st_size / 1024:.0f} KB, {n} distinct colours")
    if n < 200:
        print("the page looks blank", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
