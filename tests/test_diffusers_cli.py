"""`vidiff sample --model FOLDER` on a user's diffusers folders (tiny random models saved here): Stable Diffusion
with --prompt and Stable Video Diffusion with --image and its micro-conditions give what the pipelines give;
bad folders, images and motion buckets are one line or a notice."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from vidiff.cli import main
from vidiff.pipelines.image_to_video import ImageToVideo
from vidiff.pipelines.stable_diffusion import StableDiffusion

pytest.importorskip("diffusers")
pytest.importorskip("transformers")
Image = pytest.importorskip("PIL.Image")

from .pipelines.test_stable_diffusion import tiny_sd_pipeline  # noqa: E402
from .pipelines.test_svd import tiny_svd_pipeline  # noqa: E402


@pytest.fixture(scope="module")
def sd_folder(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sd")
    tiny_sd_pipeline(tmp).save_pretrained(tmp / "sd")
    return tmp / "sd"


@pytest.fixture(scope="module")
def svd_folder(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("svd")
    tiny_svd_pipeline().save_pretrained(tmp / "svd")
    first = np.random.default_rng(0).integers(0, 256, (40, 48, 3), dtype=np.uint8)  # not the 32x32 asked for
    Image.fromarray(first).save(tmp / "first.png")
    return tmp / "svd", tmp / "first.png"


def test_svd_folder_writes_an_mp4_through_the_cli(svd_folder, tmp_path):
    folder, first = svd_folder
    cmd = [sys.executable, "-m", "vidiff.cli", "sample", "--model", str(folder), "--image", str(first),
           "--motion-bucket", "300", "--fps", "7", "--noise-aug", "0.02", "--min-guidance", "1", "--max-guidance", "3",
           "--sampler", "euler", "--steps", "2", "--frames", "3", "--height", "32", "--width", "32",
           "--out", str(tmp_path), "--name", "svd", "--format", "mp4,npy", "--scale", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    assert "resizing the 48x40 image to the model's 32x32" in r.stderr  # wrong size: resized with a notice
    assert "motion bucket 300 is outside the trained range [0, 255]; using 255" in r.stderr  # clamped
    assert (tmp_path / "svd.mp4").stat().st_size > 0
    video = np.load(tmp_path / "svd.npy")
    assert video.shape == (1, 3, 32, 32, 3) and video.dtype == np.uint8  # one video unless --num
    # the options reached the pipeline: the library call with the same request gives the same frames
    expected = ImageToVideo.from_pretrained(folder)(str(first), frames=3, height=32, width=32, fps=7, motion_bucket=255,
                                                    noise_aug=0.02, guidance_first=0.0, guidance_last=2.0, steps=2,
                                                    sampler="euler", seed=0)
    assert np.abs(video.astype(int) - expected.astype(int)).max() <= 1


def test_sd_folder_samples_the_prompt_with_the_pipeline_defaults(sd_folder, tmp_path, capsys):
    code = main(["sample", "--model", str(sd_folder), "--prompt", "a cat", "--num", "2", "--steps", "3",
                 "--out", str(tmp_path), "--name", "sd", "--format", "npy"])
    assert code == 0, capsys.readouterr().err
    assert "ddim, 3 steps, seed 0, guidance 6.5" in capsys.readouterr().out
    images = np.load(tmp_path / "sd.npy")
    expected = StableDiffusion.from_pretrained(sd_folder)("a cat", 2, steps=3, guidance=6.5, sampler="ddim", seed=0)
    assert images.shape == expected.shape == (2, 1, 16, 16, 3)
    assert np.array_equal(images, expected)


def _error(args, capsys) -> str:
    code = main(["sample", *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err and err[-1].startswith("error: ")
    assert not any("Traceback" in line for line in err)
    return err[-1]


def test_bad_folders_and_options_are_one_line(sd_folder, svd_folder, tmp_path, capsys):
    svd, first = svd_folder
    broken = tmp_path / "no_vae"
    shutil.copytree(svd, broken)
    shutil.rmtree(broken / "vae")
    line = _error(["--model", str(broken), "--image", str(first), "--out", str(tmp_path)], capsys)
    assert "missing component 'vae'" in line and "AutoencoderKLTemporalDecoder" in line
    odd = tmp_path / "odd"
    shutil.copytree(sd_folder, odd)
    cfg = json.loads((odd / "unet" / "config.json").read_text())
    (odd / "unet" / "config.json").write_text(json.dumps({**cfg, "_class_name": "UNet3DConditionModel"}))
    index = json.loads((odd / "model_index.json").read_text())
    (odd / "model_index.json").write_text(json.dumps({**index, "unet": ["diffusers", "UNet3DConditionModel"]}))
    line = _error(["--model", str(odd), "--prompt", "a cat", "--out", str(tmp_path)], capsys)
    assert "unsupported class 'UNet3DConditionModel'" in line and "'unet'" in line
    assert "--image" in _error(["--model", str(svd), "--out", str(tmp_path)], capsys)
    assert "--motion-bucket" in _error(["--model", str(sd_folder), "--prompt", "a cat", "--motion-bucket", "10",
                                        "--out", str(tmp_path)], capsys)
    assert "--prompt" in _error(["--model", str(svd), "--image", str(first), "--prompt", "x", "--out",
                                 str(tmp_path)], capsys)
    assert "not trained with that micro-condition" in _error(["--model", "shapes-tiny", "--fps", "7", "--out",
                                                               str(tmp_path)], capsys)
    assert not any(tmp_path.glob("samples*"))  # nothing half-written
