"""Video LDM's keyframes -> latent frame interpolation (pipelines.keyframes, a latent TSR stage in a cascade).

Oracles: with the identity autoencoder the latent cascade is the pixel cascade written out from `sample_videos`
and `sr_request_cond` (no uint8 rounding between stages), bit for bit; with a random VAE the keyframe latents reach
the interpolation model's conditioning and its output unchanged and the autoencoder decodes once; then the
commands run on a keyframe model and a TSR model trained with `vidiff train --latent VAE`."""
import json

import numpy as np
import pytest
import torch

from vidiff.cli import main
from vidiff.conditioning.tasks import sr_request_cond
from vidiff.data.io import to_uint8
from vidiff.models.autoencoders import IdentityAutoencoder
from vidiff.models.vae import VAEConfig, VideoAutoencoder, save_vae
from vidiff.pipelines import DiffusionConfig, LatentVideoPipeline, VideoFormat, VideoPipeline, sample_videos
from vidiff.pipelines.cascade import CascadeConfig, CascadePipeline, StageConfig, upsample
from vidiff.pipelines.keyframes import keyframes_then_interpolate
from vidiff.utils import VidiffError

from ._tiny import TINY, run
from ._tiny import perturbed_model as _model

TSR = {"conditioning": {"condition": "tsr"}}


def _cascade(base, tsr, time, steps=2):
    return CascadePipeline(base, tsr, config=CascadeConfig(StageConfig(base.name, steps), StageConfig(tsr.name, steps),
                                                           time=time))


def _vae(seed: int, **extra) -> VideoAutoencoder:
    """A tiny random VAE (4 latent channels, spatial factor 4) with live temporal layers."""
    torch.manual_seed(seed)
    ae = VideoAutoencoder(VAEConfig(base_channels=8, norm_groups=4, spatial_factor=4, mid_attention=False, **extra))
    with torch.no_grad():
        for p in ae.temporal_parameters():
            p.add_(0.05 * torch.randn(p.shape))
    return ae.eval()


def _latent_pair(ae_base, ae_tsr=None, keyframes=3):
    """A latent keyframe model (`keyframes` frames of 16x16) and a latent TSR model of `ae_tsr` (default: the same)."""
    ae_tsr = ae_tsr or ae_base
    c, ct = ae_base.latent_channels, ae_tsr.latent_channels
    base = LatentVideoPipeline(_model(0, in_channels=c, out_channels=c), DiffusionConfig(),
                               VideoFormat(frames=keyframes, size=16), ae_base, name="kf")
    tsr = LatentVideoPipeline(_model(1, in_channels=ct, out_channels=ct, cond_channels=ct + 1), DiffusionConfig(),
                              VideoFormat(frames=2 * keyframes, size=16), ae_tsr, config=TSR, name="interp")
    return base, tsr


def _count(monkeypatch, ae, method="decode"):
    calls = []
    fn = getattr(ae, method)
    monkeypatch.setattr(ae, method, lambda *a, **k: calls.append(1) or fn(*a, **k))
    return calls


# --- the identity oracle ----------------------------------------------------------------------------------------

def test_identity_autoencoder_cascade_is_the_pixel_cascade_bit_for_bit():
    pixel_base = VideoPipeline(_model(0), DiffusionConfig(), VideoFormat(frames=3, size=16), name="kf")
    pixel_tsr = VideoPipeline(_model(1, cond_channels=4), DiffusionConfig(), VideoFormat(frames=6, size=16), TSR,
                              name="interp")
    base, tsr = (LatentVideoPipeline.from_pixel_pipeline(p, IdentityAutoencoder()) for p in (pixel_base, pixel_tsr))
    got = _cascade(base, tsr, time=4)(2, seed=3)  # uint8 (2, 12, 16, 16, 3)

    # the pixel cascade written out: keyframes, then two TSR passes on the unrounded frames, rounded once at the end
    x = sample_videos(pixel_base.model, DiffusionConfig(), (2, 3, 3, 16, 16), steps=2, seed=3)  # (2, 3, 3, 16, 16)
    for _ in range(2):
        y = sample_videos(pixel_tsr.model, DiffusionConfig(), (2, 3, 2 * x.shape[2], 16, 16), steps=2, seed=3,
                          cond=sr_request_cond("tsr", x))
        y[:, :, ::2] = x
        x = y
    assert got.shape == (2, 12, 16, 16, 3) and torch.equal(got, torch.from_numpy(to_uint8(x)))

    # the pixel cascade rounds its stages to uint8: the keyframes agree exactly, the frames between them nearly
    pixel = _cascade(pixel_base, pixel_tsr, time=4)(2, seed=3, return_stages=True)
    assert torch.equal(got[:, ::4], pixel["base"]) and torch.equal(pixel["tsr"][:, ::4], pixel["base"])
    assert (got.float() - pixel["tsr"].float()).abs().mean() < 2.0

    # one pass over a given video: equal after rounding (the pixel stage rounds once too)
    video = torch.rand(2, 3, 3, 16, 16) * 2 - 1
    a = upsample(pixel_tsr, None, video, space=1, time=2, steps=2, seed=1)
    b = upsample(tsr, None, video, space=1, time=2, steps=2, seed=1)
    assert b.shape == (2, 3, 6, 16, 16) and np.array_equal(to_uint8(a), to_uint8(b))


# --- a random VAE: the latents go through, one decode ---------------------------------------------------------

def test_keyframe_latents_reach_the_interpolator_unchanged_and_decode_once(monkeypatch):
    ae = _vae(0)
    base, tsr = _latent_pair(ae)
    seen = []  # the concat condition of every TSR forward pass
    tsr.model.register_forward_pre_hook(lambda m, args, kwargs: seen.append(
        (kwargs["cond"] if "cond" in kwargs else args[2]).concat),
                                        with_kwargs=True)
    decodes = _count(monkeypatch, ae)
    out = keyframes_then_interpolate(base, tsr, 2, passes=2, steps=2, seed=5)
    assert len(decodes) == 1  # the interpolated latents only; the keyframes were never decoded
    assert out.keyframes.shape == (2, 4, 3, 4, 4) and out.latents.shape == (2, 4, 12, 4, 4)
    assert out.video.shape == (2, 3, 12, 16, 16)
    assert torch.equal(out.keyframes, base(2, steps=2, seed=5, output_type="latent"))  # the base's samples as drawn
    assert torch.equal(out.latents[:, :, ::4], out.keyframes)  # at the keyframe positions, bit for bit
    first, second = seen[0], seen[-1]  # 2 steps of DDIM per pass
    assert len(seen) == 4 and first.shape == (2, 5, 6, 4, 4) and second.shape == (2, 5, 12, 4, 4)
    assert torch.equal(first[:, :4, ::2], out.keyframes) and first[:, :4, 1::2].abs().sum() == 0
    assert first[:, 4, :, 0, 0].tolist() == [[1, 0] * 3] * 2  # the frame mask
    assert torch.equal(second[:, :4, ::2], out.latents[:, :, ::2]) and torch.equal(second[:, :4, ::4], out.keyframes)
    assert torch.equal(out.video, tsr.decode(out.latents))  # the video is the decode of those latents

    # the cascade runs the same work: one decode, the same video; its stages decode the keyframes as well
    decodes.clear()
    videos = _cascade(base, tsr, time=4)(2, seed=5)
    assert len(decodes) == 1 and torch.equal(videos, torch.from_numpy(to_uint8(out.video)))
    stages = _cascade(base, tsr, time=4)(2, seed=5, return_stages=True)
    assert len(decodes) == 3 and torch.equal(stages["tsr"], videos)
    assert torch.equal(stages["base"], base(2, steps=2, seed=5))


def test_a_given_video_is_encoded_once_and_decoded_once(monkeypatch):
    ae = _vae(0)
    _, tsr = _latent_pair(ae)
    encodes, decodes = _count(monkeypatch, ae, "encode"), _count(monkeypatch, ae)
    video = torch.rand(3, 3, 16, 16) * 2 - 1  # unbatched (C, F, H, W)
    y = upsample(tsr, None, video, space=1, time=4, steps=2, seed=0)
    assert y.shape == (3, 12, 16, 16) and torch.equal(y[:, ::4], video)  # the given frames, as given
    assert len(encodes) == 1 and len(decodes) == 1


def test_different_autoencoders_decode_and_reencode_with_a_notice(monkeypatch, capsys):
    ae_kf, ae_tsr = _vae(0), _vae(7)
    base, tsr = _latent_pair(ae_kf, ae_tsr)
    kf_decodes, tsr_decodes = _count(monkeypatch, ae_kf), _count(monkeypatch, ae_tsr)
    out = keyframes_then_interpolate(base, tsr, 1, passes=1, steps=2)
    err = capsys.readouterr().err
    assert err.count("note:") == 1 and "different autoencoders" in err and "decoded and re-encoded" in err
    assert len(kf_decodes) == 1 and len(tsr_decodes) == 1
    assert torch.equal(out.latents[:, :, ::2], tsr.encode(base.decode(out.keyframes)))
    kf_decodes.clear()

    # the same weights (one sha256) but another scaling: the latents are rescaled, not decoded
    ae_kf.fingerprint = ae_tsr.fingerprint = "same"
    base, tsr = _latent_pair(ae_kf, ae_tsr)
    tsr.scaling_factor = 2 * base.scaling_factor
    out = keyframes_then_interpolate(base, tsr, 1, passes=1, steps=2)
    assert "note:" not in capsys.readouterr().err and not kf_decodes
    torch.testing.assert_close(out.latents[:, :, ::2], 2 * out.keyframes)


def test_bad_input_is_one_line():
    ae = _vae(0)
    base, tsr = _latent_pair(ae)
    one_frame, _ = _latent_pair(ae, keyframes=1)
    causal = _vae(1, causal=True, temporal_compression=4)
    _, time_compressed = _latent_pair(causal)
    pixel_tsr = VideoPipeline(_model(1, cond_channels=4), DiffusionConfig(), VideoFormat(frames=6, size=16), TSR)
    class_model = LatentVideoPipeline(base.model, DiffusionConfig(), base.video, ae,
                                      config={"conditioning": {"condition": "class"}}, name="cls")
    latent_ssr = LatentVideoPipeline(base.model, DiffusionConfig(), base.video, ae,
                                     config={"conditioning": {"condition": "ssr"}}, name="lssr")
    odd_size = VideoPipeline(_model(0), DiffusionConfig(), VideoFormat(frames=3, size=18), name="odd")
    cases = [
        (lambda: keyframes_then_interpolate(base, time_compressed, 1, steps=1), "compresses time 4x"),
        (lambda: keyframes_then_interpolate(base, pixel_tsr, 1, steps=1), "is a pixel model"),
        (lambda: keyframes_then_interpolate(one_frame, tsr, 1, steps=1), "at least 2 keyframes; got 1"),
        (lambda: keyframes_then_interpolate(base, class_model, 1, steps=1), "not a temporal super-resolution model"),
        (lambda: keyframes_then_interpolate(base, tsr, 1, passes=0, steps=1), "positive integer; got 0"),
        (lambda: keyframes_then_interpolate(odd_size, tsr, 1, steps=1), "cannot be encoded for the interpolation"),
        (lambda: _cascade(base, tsr, time=3), "power of 2"),
        (lambda: CascadePipeline(base, None, latent_ssr, config=CascadeConfig(StageConfig("kf"), ssr=StageConfig("x"))),
         "spatial super-resolution stages run on pixels"),
    ]
    for fn, msg in cases:
        with pytest.raises(VidiffError, match=msg) as e:
            fn()
        assert "\n" not in str(e.value)


# --- the commands on models trained with `vidiff train --latent` -----------------------------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Shapes videos (4 frames of 16x16), a random VAE, a keyframe model (2 frames at stride 2) and a TSR model
    (4 frames), each trained for 2 steps with `vidiff train --latent`."""
    root = tmp_path_factory.mktemp("latent_cascade")
    assert main(["data", "synth", "shapes", str(root / "shapes"), "--num", "2", "--frames", "4", "--size", "16"]) == 0
    save_vae(root / "vae", _vae(0))
    (root / "tiny.json").write_text(json.dumps(TINY))
    common = ["--data", root / "shapes", "--latent", root / "vae", "--size", "16", "--model", root / "tiny.json",
              "--steps", "2", "--batch", "2", "--sample-every", "0"]
    assert main([str(a) for a in ["train", *common, "--frames", "2", "--stride", "2", "--out", root / "kf"]]) == 0
    assert main([str(a) for a in ["train", *common, "--frames", "4", "--condition", "tsr", "--out",
                                  root / "interp"]]) == 0
    return root


def test_cli_cascade_and_upsample_with_latent_stages(trained, capsys, tmp_path):
    cfg = json.loads((trained / "interp" / "config.json").read_text())
    assert cfg["conditioning"]["condition"] == "tsr" and cfg["model"]["cond_channels"] == 4 + 1
    assert cfg["latent"]["latent_channels"] == 4
    (tmp_path / "c.yaml").write_text(f"base: {{model: {trained / 'kf'}, steps: 2}}\n"
                                     f"tsr: {{model: {trained / 'interp'}, steps: 2}}\ntime: 4\n")
    code, out, err = run(capsys, "cascade", "--config", tmp_path / "c.yaml", "--num", "2", "--stages",
                         "--out", tmp_path, "--format", "npy")
    assert code == 0, err
    final, keyframes = np.load(tmp_path / "cascade.npy"), np.load(tmp_path / "cascade_base.npy")
    assert final.shape == (2, 8, 16, 16, 3) and keyframes.shape == (2, 2, 16, 16, 3)
    api = CascadePipeline.from_config(tmp_path / "c.yaml")(2)
    assert np.array_equal(api.numpy(), final)

    given = np.random.default_rng(0).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    np.save(tmp_path / "low.npy", given)
    code, out, err = run(capsys, "upsample", tmp_path / "low.npy", "--tsr-model", trained / "interp", "--time", "2",
                         "--steps", "2", "--out", tmp_path, "--name", "up", "--format", "npy")
    assert code == 0, err
    y = np.load(tmp_path / "up.npy")
    assert y.shape == (6, 16, 16, 3) and np.array_equal(y[::2], given)

    np.save(tmp_path / "odd.npy", given[:, :14, :14])
    code, _, err = run(capsys, "upsample", tmp_path / "odd.npy", "--tsr-model", trained / "interp", "--time", "2",
                       "--steps", "2", "--out", tmp_path / "o")
    assert code == 2 and err.startswith("error:") and "height 14 is not divisible" in err
    assert err.strip().count("\n") == 0
