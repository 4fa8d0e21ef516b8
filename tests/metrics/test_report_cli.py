"""Visual reports, the protocol record and `vidiff eval` end to end on tiny .npy sets."""
import hashlib
import json

import numpy as np
import pytest
import torch
from torch import nn

from vidiff.cli import main
from vidiff.config import config_from_dict, config_to_dict
from vidiff.metrics import xt_slice
from vidiff.metrics.protocol import EvalProtocol
from vidiff.metrics.report import plot_over_time, save_side_by_side_mp4, save_xt_png
from vidiff.utils import VidiffError

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")


def test_xt_slice_layouts():
    v = np.random.default_rng(0).integers(0, 256, (5, 6, 7, 3), dtype=np.uint8)
    np.testing.assert_array_equal(xt_slice(v, 2), v[:, 2])  # (F, W, 3): time runs down
    t = torch.rand(3, 5, 6, 7)
    assert torch.equal(xt_slice(t, -1), t[:, :, 5])  # (C, F, W)
    with pytest.raises(VidiffError, match="outside the frame height"):
        xt_slice(v, 6)


def test_report_files(tmp_path):
    from PIL import Image

    v = np.random.default_rng(0).integers(0, 256, (4, 8, 10, 3), dtype=np.uint8)
    save_xt_png(tmp_path / "xt.png", v, row=3, scale=2)
    assert Image.open(tmp_path / "xt.png").size == (20, 8)  # (W·2, F·2)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "xt.png"))[::2, ::2], v[:, 3])
    save_side_by_side_mp4(tmp_path / "sbs.mp4", v, v[::-1])
    assert (tmp_path / "sbs.mp4").stat().st_size > 0
    plot_over_time(tmp_path / "p.png", {"psnr": [(0, 30.0), (1, 28.0)]})
    assert Image.open(tmp_path / "p.png").format == "PNG"


def test_protocol_warnings_and_round_trip():
    p = EvalProtocol(num_real=16, num_fake=16, frames=8, extractor="random-i3d-seed0", extractor_kind="video")
    text = " ".join(p.warnings)
    assert "2048" in text and "frames per clip" in text and "NOT comparable" in text
    q = EvalProtocol(num_real=4096, num_fake=2048, frames=16, extractor="i3d-400-logits", extractor_kind="video",
                     comparable_to_published=True)
    assert q.warnings == []
    again = config_from_dict(EvalProtocol, config_to_dict(p))
    assert config_to_dict(again) == config_to_dict(p)


@pytest.fixture()
def sets(tmp_path):
    g = np.random.default_rng(0)
    real = g.integers(0, 256, (4, 10, 16, 16, 3), dtype=np.uint8)
    fake = np.clip(real.astype(int) + g.integers(-30, 30, real.shape), 0, 255).astype(np.uint8)
    np.save(tmp_path / "real.npy", real)
    np.save(tmp_path / "fake.npy", fake)
    return tmp_path, real, fake


def test_cli_end_to_end_writes_json_with_protocol(sets):
    d, real, fake = sets
    out = d / "report.json"
    rc = main(["eval", "--real", str(d / "real.npy"), "--fake", str(d / "fake.npy"), "--metrics",
               "fvd,fid,kid,psnr,ssim,flicker,warp,motion", "--frames", "8", "--out", str(out), "--kid-subsets", "5",
               "--report-dir", str(d / "rep"), "--window", "4", "--device", "cpu"])
    assert rc == 0
    rep = json.loads(out.read_text())
    s = rep["scores"]
    assert set(s) == {"fvd", "fid", "kid", "psnr", "ssim", "flicker", "warp", "motion"}
    p = s["fvd"]["protocol"]
    assert p["num_real"] == p["num_fake"] == 4 and p["frames"] == 8 and p["clip_stride"] == 1
    assert p["resize_method"] == "bilinear" and p["extractor"].startswith("random-i3d")
    assert p["comparable_to_published"] is False and any("NOT comparable" in w for w in p["warnings"])
    assert s["fid"]["images_real"] == 32 and s["kid"]["subsets"] == 5
    from skimage.metrics import peak_signal_noise_ratio

    ref = np.mean([peak_signal_noise_ratio(real[i, t], fake[i, t], data_range=255) for i in range(4) for t in range(8)])
    assert s["psnr"]["value"] == pytest.approx(ref, rel=1e-4)
    assert len(rep["over_time"]["fvd"]) == 2 and len(s["ssim"]["per_frame"]) == 8
    names = {f.name for f in (d / "rep").iterdir()}
    assert {"xt_real_vs_generated.png", "real_vs_generated.mp4", "psnr_over_time.png", "fvd_over_time.png"} <= names


def test_cli_identical_sets_with_torchscript_i3d(sets, tmp_path):
    d, real, _ = sets

    class TinyI3D(nn.Module):
        def forward(self, x: torch.Tensor, rescale: bool = False, resize: bool = False,
                    return_features: bool = False) -> torch.Tensor:
            return torch.cat([x.mean(dim=(2, 3, 4)), x.std(dim=(2, 3, 4))], 1)

    ts = tmp_path / "i3d_torchscript.pt"
    torch.jit.script(TinyI3D()).save(str(ts))
    out = d / "r.json"
    rc = main(["eval", "--real", str(d / "real.npy"), "--fake", str(d / "real.npy"), "--metrics", "fvd",
               "--i3d", str(ts), "--frames", "4", "--out", str(out)])
    assert rc == 0
    s = json.loads(out.read_text())["scores"]["fvd"]
    assert s["value"] == pytest.approx(0.0, abs=1e-6)
    assert s["protocol"]["extractor_weights_sha256"] == hashlib.sha256(ts.read_bytes()).hexdigest()
    assert s["protocol"]["comparable_to_published"] is True and s["protocol"]["resize_size"] == 224


def test_cli_bad_input(sets, capsys):
    d, real, fake = sets
    np.save(d / "one.npy", real[:1])
    np.save(d / "three.npy", real[:3])
    args = ["eval", "--real", str(d / "real.npy"), "--frames", "4"]
    assert main(args + ["--fake", str(d / "one.npy"), "--metrics", "fvd"]) == 2
    assert "at least 2 videos" in capsys.readouterr().err
    assert main(args + ["--fake", str(d / "three.npy"), "--metrics", "psnr"]) == 2
    assert "equal counts" in capsys.readouterr().err
    assert main(["eval", "--real", str(d / "real.npy"), "--fake", str(d / "fake.npy"), "--frames", "11"]) == 2
    assert "lower --frames" in capsys.readouterr().err
    assert main(args + ["--fake", str(d / "fake.npy"), "--metrics", "fvd,bogus"]) == 2
    assert "unknown metric" in capsys.readouterr().err
    bad = d / "bad.pt"
    bad.write_text("x")
    assert main(args + ["--fake", str(d / "fake.npy"), "--metrics", "fvd", "--i3d", str(bad)]) == 2
    assert "accepted formats" in capsys.readouterr().err


def test_cli_folder_input_with_mixed_sizes_is_resized(tmp_path, capsys):
    from vidiff.data.io import write_npy

    g = np.random.default_rng(1)
    for i, s in enumerate((16, 16, 20)):
        write_npy(tmp_path / "real" / f"v{i}.npy", g.integers(0, 256, (6, s, s, 3), dtype=np.uint8))
        write_npy(tmp_path / "fake" / f"v{i}.npy", g.integers(0, 256, (6, 16, 16, 3), dtype=np.uint8))
    rc = main(["eval", "--real", str(tmp_path / "real"), "--fake", str(tmp_path / "fake"), "--metrics",
               "ssim,flicker", "--frames", "6"])
    assert rc == 0
    assert "different sizes" in capsys.readouterr().err


def test_evaluate_api_on_tensors_and_size_mismatch():
    from vidiff.metrics import evaluate

    g = torch.Generator().manual_seed(0)
    real = torch.rand(3, 3, 6, 16, 16, generator=g) * 2 - 1
    res = evaluate(real, real.clone(), "fvd,psnr,ssim,flicker", frames=6, warn=lambda m: None)["scores"]
    assert res["fvd"]["value"] == pytest.approx(0.0, abs=1e-6)
    assert res["psnr"]["value"] == pytest.approx(100.0) and res["ssim"]["value"] == pytest.approx(1.0, abs=1e-6)
    msgs = []
    big = torch.nn.functional.interpolate(real.flatten(1, 2), size=(32, 32), mode="nearest").view(3, 3, 6, 32, 32)
    res = evaluate(real, big, "ssim", frames=6, warn=msgs.append)["scores"]
    assert any("resizing generated to (16, 16)" in m for m in msgs)
    assert res["ssim"]["protocol"]["resize_method"] == "bilinear-to-real" and res["ssim"]["value"] > 0.5


def test_public_names_resolve():
    import vidiff.metrics as vm

    for name in vm.__all__:
        assert not isinstance(getattr(vm, name), type(vm)), f"{name} resolves to a module"
