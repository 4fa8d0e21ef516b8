"""`vidiff ui` in a real headless browser (Debian's chromium driven by Playwright): generate a video, poke
a photo, and see an invalid upload answered by one line in the page."""
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vidiff.data import io

IN_CI = os.environ.get("CI", "").lower() == "true"
CHROMIUM = shutil.which("chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOTS = Path(os.environ.get("VIDIFF_UI_SHOTS", "/tmp"))

if CHROMIUM is None and not IN_CI:
    pytest.skip("chromium is not installed (apt-get install chromium; .ci/run installs it, and with CI=true "
                "these tests fail without it)", allow_module_level=True)

from playwright.sync_api import sync_playwright  # noqa: E402 - the [test] extra


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`vidiff ui` in a subprocess on a free port, with an empty runs folder."""
    port = _free_port()
    cwd = tmp_path_factory.mktemp("ui")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "vidiff.cli", "ui", "--port", str(port)], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 60
    while True:
        try:
            urllib.request.urlopen(url, timeout=1)
            break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                pytest.fail(f"vidiff ui did not start:\n{proc.stdout.read()}")
            time.sleep(0.3)
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.fail("CI=true but chromium is not installed: apt-get install chromium (.ci/run does)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser, server):
    ctx = browser.new_context(viewport={"width": 1280, "height": 1000}, accept_downloads=True)
    pg = ctx.new_page()
    pg.set_default_timeout(30_000)
    pg.goto(server)
    pg.wait_for_selector("#gen-run")
    yield pg
    ctx.close()


def _set_number(page, selector: str, value) -> None:
    box = page.locator(f"{selector} input[type=number]").first
    box.fill(str(value))
    box.press("Enter")


def test_generate_plays_and_downloads_the_mp4(page, tmp_path):
    page.locator("#gen-model input").fill("shapes-tiny")
    page.keyboard.press("Enter")
    _set_number(page, "#gen-steps", 2)
    _set_number(page, "#gen-seed", 0)
    page.click("#gen-run")
    video = page.wait_for_selector("#gen-video video[src]")
    assert video.get_attribute("src")
    page.wait_for_function("document.querySelector('#gen-video video').duration > 0")
    assert "2 steps, seed 0" in page.inner_text("#gen-summary")
    page.screenshot(path=str(SHOTS / "vidiff-ui-generate.png"), full_page=True)
    link = page.locator("#gen-files a[download='video.mp4']")
    with page.expect_download() as dl:
        link.click()
    path = tmp_path / "video.mp4"
    dl.value.save_as(path)
    frames = io.read_video(path)
    assert frames.shape[0] == 16 and frames.shape[-1] == 3


def _video_plays(page, selector: str) -> str:
    """Wait until the video in `selector` has a source with a duration; return the source."""
    page.wait_for_function(f"(v => v && v.src && v.duration > 0)(document.querySelector('{selector} video'))")
    return page.locator(f"{selector} video").get_attribute("src")


def test_animate_and_two_clicks_on_the_photo_play_the_poke(page, tmp_path):
    rng = np.random.default_rng(0)
    photo = tmp_path / "photo.png"
    Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(photo)
    page.get_by_role("tab", name="Animate a photo").click()
    page.locator("#anim-photo input[type=file]").set_input_files(str(photo))
    canvas = page.locator("#poke-canvas img")
    canvas.wait_for()
    _set_number(page, "#anim-steps", 2)
    _set_number(page, "#anim-frames", 8)
    _set_number(page, "#poke-frames", 8)
    page.click("#anim-run")
    _video_plays(page, "#anim-video")

    box = canvas.bounding_box()
    canvas.click(position={"x": box["width"] * 0.5, "y": box["height"] * 0.5})
    page.wait_for_function("document.querySelector('#poke-x input').value === '32'")
    canvas.click(position={"x": box["width"] * 0.75, "y": box["height"] * 0.5})
    _video_plays(page, "#poke-video")
    assert "poke at (32, 24)" in page.inner_text("#poke-summary")
    assert float(page.locator("#poke-dx input[type=number]").input_value()) > 0
    page.screenshot(path=str(SHOTS / "vidiff-ui-poke.png"), full_page=True)
    # another drag, another response (its summary names the new point)
    canvas.click(position={"x": box["width"] * 0.25, "y": box["height"] * 0.25})
    page.wait_for_function("document.querySelector('#poke-dx input[type=number]').value === '0'")
    canvas.click(position={"x": box["width"] * 0.25, "y": box["height"] * 0.75})
    # the summary is cleared when a new drag starts, so wait for the new point's, then for its response
    page.wait_for_function("(t => t.includes('poke at (') && !t.includes('(32, 24)'))"
                           "(document.querySelector('#poke-summary').innerText)")
    _video_plays(page, "#poke-video")
    page.wait_for_function("parseFloat(document.querySelector('#poke-dy input[type=number]').value) > 0")
    assert float(page.locator("#poke-dy input[type=number]").input_value()) > 0


def test_an_invalid_upload_shows_one_line_and_a_video_extends(page, tmp_path):
    bad = tmp_path / "clip.mp4"
    bad.write_text("this is not a video\n" * 20)
    page.get_by_role("tab", name="Extend / interpolate / upsample").click()
    upload = page.locator("#op-upload input[type=file]")
    upload.set_input_files(str(bad))
    page.locator("#op-upload [data-testid=download-link]").wait_for()  # the upload reached the server
    page.click("#op-run")
    toast = page.locator(".toast-body")
    toast.wait_for()
    message = toast.locator("[data-testid=toast-text]").inner_text().strip()
    assert message.startswith("the uploaded file is not a video vidiff can decode") and "\n" not in message
    assert "Traceback" not in page.content()
    page.screenshot(path=str(SHOTS / "vidiff-ui-error.png"))

    good = tmp_path / "clip.gif"
    io.write_gif(good, np.random.default_rng(1).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8), fps=8)
    page.locator("#op-upload [aria-label='Clear']").first.click() if page.locator(
        "#op-upload [aria-label='Clear']").count() else None
    upload.set_input_files(str(good))
    page.locator("#op-upload a[download='clip.gif']").wait_for()
    _set_number(page, "#op-frames", 16)
    _set_number(page, "#op-steps", 2)
    page.click("#op-run")
    _video_plays(page, "#op-video")
    assert "extend: 8 frames" in page.inner_text("#op-summary")
