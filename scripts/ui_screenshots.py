"""docs/ui_generate.png and docs/ui_poke.png: `vidiff ui` in headless chromium (Playwright), the Generate
tab after shapes-tiny (DDPM 50, seed 0) and the Poke section after two clicks on a procedural scene.

    OMP_NUM_THREADS=2 .venv/bin/python scripts/ui_screenshots.py [--out docs]
"""
from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from PIL import Image

from vidiff.dynamics.procedural import make_scene

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def set_number(page, selector: str, value) -> None:
    box = page.locator(f"{selector} input[type=number]").first
    box.fill(str(value))
    box.press("Enter")


def save(path: Path, shot: bytes) -> None:
    """Three quarters of the browser's size, 256 colours: a small PNG for the README."""
    import io

    im = Image.open(io.BytesIO(shot)).convert("RGB")
    im = im.resize((im.width * 3 // 4, im.height * 3 // 4), Image.LANCZOS)
    im.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    print(f"wrote {path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("docs"))
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tmp = Path(tempfile.mkdtemp(prefix="vidiff-shots-"))
    photo = tmp / "scene.png"
    Image.fromarray(make_scene(seed=3, size=(128, 128), frames=30, k=8, render_video=False).image).save(photo)
    server = subprocess.Popen([sys.executable, "-m", "vidiff.cli", "ui", "--port", str(port)], cwd=tmp, env=os.environ)
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(url, timeout=1)
                break
            except OSError:
                time.sleep(0.3)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, args=ARGS, headless=True)
            page = browser.new_page(viewport={"width": 1280, "height": 760})
            page.set_default_timeout(300_000)
            page.goto(url)
            page.wait_for_selector("#gen-run")
            set_number(page, "#gen-steps", 50)
            page.click("#gen-run")
            page.wait_for_selector("#gen-video video[src]")
            page.wait_for_function("document.querySelector('#gen-video video').duration > 0")
            page.evaluate("v = document.querySelector('#gen-video video'); v.pause(); v.currentTime = 1.0")
            time.sleep(1)
            save(args.out / "ui_generate.png", page.screenshot())

            page.get_by_role("tab", name="Animate a photo").click()
            page.locator("#anim-photo input[type=file]").set_input_files(str(photo))
            canvas = page.locator("#poke-canvas img")
            canvas.wait_for()
            set_number(page, "#poke-frames", 60)
            box = canvas.bounding_box()
            canvas.click(position={"x": box["width"] * 0.45, "y": box["height"] * 0.4})
            page.wait_for_function("document.querySelector('#poke-x input').value !== '0'")
            canvas.click(position={"x": box["width"] * 0.6, "y": box["height"] * 0.45})
            page.wait_for_selector("#poke-video video[src]")
            time.sleep(2)
            page.evaluate("v = document.querySelector('#poke-video video'); v.pause(); v.currentTime = 0.3")
            page.evaluate("window.scrollTo(0, document.querySelector('#poke-canvas').getBoundingClientRect().top"
                          " + window.scrollY - 110)")
            time.sleep(1)
            save(args.out / "ui_poke.png", page.screenshot())
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
