"""EDM's training law in `vidiff train --schedule edm` and the SVD-style recipe end to end through the CLI:
lognormal σ, λ(σ) weighting equal to EDM's loss (Karras et al. 2022, table 1), the preconditioned denoiser's
limit σ → 0, a tiny first-frame + micro-conditioned + EDM run, then `vidiff sample` on it."""
import json
import math

import numpy as np
import pytest
import torch

from vidiff.cli import main as cli
from vidiff.diffusion.edm import EDMDenoiser, c_out, c_skip, edm_loss, loss_weight, sigma_of_t, t_of_sigma
from vidiff.diffusion.loss import diffusion_loss, edm_weight, lognormal_times
from vidiff.diffusion.param import Denoiser, Prediction
from vidiff.diffusion.schedule import CosineSchedule, EDMSchedule

EDM = EDMSchedule()
TINY = {"arch": "unet3d", "in_channels": 3, "out_channels": 3, "base_channels": 8, "channel_mults": [1, 2],
        "num_res_blocks": 1, "attention_levels": [1], "head_dim": 8, "temporal": "attention"}


def test_loss_weight_is_table_1():
    sigma = torch.tensor([0.002, 0.1, 0.5, 1.0, 7.0, 80.0], dtype=torch.float64)
    for sd in (0.5, 1.0):
        assert torch.allclose(loss_weight(sigma, sd), (sigma**2 + sd**2) / (sigma * sd) ** 2, rtol=1e-12)
        assert torch.allclose(loss_weight(sigma, sd) * c_out(sigma, sd) ** 2, torch.ones_like(sigma))
    logsnr = -2 * sigma.log()  # λ_t = −2 ln σ
    assert torch.allclose(edm_weight(logsnr, "x0"), loss_weight(sigma, 1.0), rtol=1e-10)
    assert torch.allclose(edm_weight(logsnr, "eps"), loss_weight(sigma, 1.0) * sigma**2, rtol=1e-10)
    assert torch.equal(edm_weight(logsnr, "v"), torch.ones_like(logsnr))


@pytest.mark.parametrize("parameterization", ["v", "eps", "x0"])
@pytest.mark.parametrize("schedule", [EDM, CosineSchedule()], ids=["edm", "cosine"])
def test_weighted_loss_equals_edm_loss(parameterization, schedule):
    """diffusion_loss(weighting="edm") of any backbone equals `edm_loss` (λ(σ)‖D − x₀‖², σ_d = 1) of the same
    network written in EDM's form F(c_in x; c_noise), at the same σ and noise."""
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(4, 3, 2, 4, 4, generator=g, dtype=torch.float64)
    weight = torch.randn(3, 3, generator=g, dtype=torch.float64)

    def backbone(z, t, cond):  # any function of (z_t, t)
        return torch.einsum("oc,bcfhw->bofhw", weight, z) * (1 + t.reshape(-1, 1, 1, 1, 1)) + 0.1

    sigma = torch.tensor([0.05, 0.3, 1.5, 6.0], dtype=torch.float64)
    t = t_of_sigma(schedule, sigma)
    noise = torch.randn(x0.shape, generator=g, dtype=torch.float64)

    def edm_form(x_in, c_noise, cond):  # F with D = c_skip x + c_out F; with σ_d = 1, c_in x is the VP z_t
        s = torch.exp(4 * c_noise).reshape(-1, 1, 1, 1, 1)
        alpha, sigma_t = (v.reshape(-1, 1, 1, 1, 1) for v in schedule.alpha_sigma(t))
        x = x_in * torch.sqrt(s**2 + 1)
        d = Prediction.from_output(parameterization, backbone(x_in, t, cond), x_in, alpha, sigma_t).x0
        return (d - c_skip(s, 1.0) * x) / c_out(s, 1.0)

    ours = diffusion_loss(backbone, x0, schedule, parameterization=parameterization, weighting="edm", t=t,
                          noise=noise, reduction="none")
    ref = edm_loss(edm_form, x0, sigma_data=1.0, sigma=sigma, noise=noise, reduction="none")
    assert torch.allclose(ours, ref, rtol=1e-9)


def test_lognormal_times_follow_p_mean_p_std():
    g = torch.Generator().manual_seed(0)
    t = lognormal_times(EDM, 50_000, g, p_mean=-0.5, p_std=0.8)
    assert t.dtype == torch.float32 and bool(((t >= 0) & (t <= 1)).all())
    logs = sigma_of_t(EDM, t.double()).log()
    assert logs.mean().item() == pytest.approx(-0.5, abs=0.02) and logs.std().item() == pytest.approx(0.8, abs=0.02)
    again = lognormal_times(EDM, 50_000, torch.Generator().manual_seed(0), p_mean=-0.5, p_std=0.8)
    assert torch.equal(t, again)


def test_preconditioned_denoiser_returns_x_as_sigma_goes_to_zero():
    """c_skip → 1 and c_out → 0 as σ → 0: D(x; σ) → x for any network output (EDM's and the VP v form)."""
    sched = EDMSchedule(sigma_min=1e-7)
    z = torch.randn(2, 3, 2, 4, 4, dtype=torch.float64)
    big = lambda x, c, cond: 5 + torch.ones_like(x)  # noqa: E731
    for sigma in (1e-3, 1e-5, 1e-7):
        t = float(t_of_sigma(sched, sigma))
        x = z * math.sqrt(1 + sigma**2)
        for pred in (EDMDenoiser(big, sigma_data=0.5)(z, t, sched), Denoiser(big, "v")(z, t, sched)):
            assert (pred.x0 - x).abs().max().item() < 20 * sigma


@pytest.fixture(scope="module")
def shapes_dir(tmp_path_factory):
    """Six 8-frame 16×16 clips of a square moving right at 1 or 2 px/frame, with their speed in metadata."""
    d = tmp_path_factory.mktemp("moving")
    lines = []
    for i in range(6):
        speed = 1 + i % 2
        v = np.zeros((8, 16, 16, 3), np.uint8)
        for f in range(8):
            x = (1 + speed * f) % 12
            v[f, 6:10, x:x + 4] = [220, 60 + 20 * i, 40]
        np.save(d / f"v{i}.npy", v)
        lines.append(json.dumps({"file": f"v{i}.npy", "speed": float(speed), "caption": "a square"}))
    (d / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    return d


def test_svd_recipe_trains_and_samples_through_the_cli(shapes_dir, tmp_path, capsys):
    model = tmp_path / "tiny.json"
    model.write_text(json.dumps(TINY))
    run = tmp_path / "run"
    args = ["train", "--data", str(shapes_dir), "--out", str(run), "--model", str(model), "--frames", "4",
            "--size", "16", "--steps", "2", "--batch", "2", "--condition", "first_frame", "--schedule", "edm",
            "--micro", "fps,motion,speed", "--cond-noise-aug", "0.1", "--sample-every", "0", "--save-every", "0"]
    assert cli(args) == 0
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["diffusion"]["schedule"] == "edm" and cfg["model"]["micro_conds"] == 3
    micro = cfg["conditioning"]["micro"]
    assert micro["kinds"] == ["fps", "motion", "speed"] and micro["range"]["speed"] == [1.0, 2.0]
    assert micro["range"]["fps"] == [8.0, 8.0] and 0 <= micro["range"]["motion"][0] <= micro["range"]["motion"][1]
    assert cfg["conditioning"]["cond_noise_aug"] == 0.1
    assert json.loads((run / "micro_values.json").read_text())["values"].keys() == {f"v{i}.npy" for i in range(6)}
    capsys.readouterr()

    from PIL import Image

    Image.fromarray(np.load(shapes_dir / "v0.npy")[0]).save(tmp_path / "first.png")
    out = tmp_path / "out"
    args = ["sample", "--model", str(run), "--image", str(tmp_path / "first.png"), "--motion-bucket", "300",
            "--fps", "7", "--speed", "1.5", "--noise-aug", "2", "--num", "2", "--steps", "2", "--out", str(out),
            "--format", "npy"]
    assert cli(args) == 0
    got = capsys.readouterr()
    assert "--motion-bucket 300 is outside" in got.err and "--fps 7 is outside" in got.err
    assert "--noise-aug 2 is outside" in got.err
    assert "heun" in got.out  # an EDM checkpoint samples with Heun unless --sampler is given
    assert np.load(out / "samples.npy").shape == (2, 4, 16, 16, 3)

    # a flag the model was not trained with, and a recipe that cannot train: one line each
    assert cli(["sample", "--model", "shapes-tiny", "--speed", "1", "--out", str(tmp_path / "o2")]) == 2
    err = capsys.readouterr().err
    assert "--speed" in err and err.count("\n") == 1
    for extra, words in ((["--micro", "fps,wind"], "unknown micro-condition"),
                         (["--condition", "none", "--cond-noise-aug", "0.1"], "--condition first_frame")):
        assert cli(["train", "--data", str(shapes_dir), "--out", str(tmp_path / "r2"), "--model", str(model),
                    "--steps", "1", "--frames", "4", "--size", "16", *extra]) == 2
        err = capsys.readouterr().err
        assert words in err and err.count("\n") == 1
