"""Feature-extractor loaders: stand-in weight files in every accepted format round-trip; bad files are refused."""
import hashlib

import numpy as np
import pytest
import torch
from torch import nn

from vidiff.metrics.extractors import fallback_extractor, load_i3d, load_inception
from vidiff.metrics.frechet import frechet_distance_features
from vidiff.metrics.i3d import InceptionI3d
from vidiff.metrics.inception import FIDInceptionV3
from vidiff.metrics.protocol import resize_video
from vidiff.utils import VidiffError

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")


def randomize_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BatchNorm statistics so a wrong mapping of running stats would change outputs."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
    return model.eval()


@pytest.fixture(scope="module")
def i3d_file(tmp_path_factory):
    torch.manual_seed(0)
    model = randomize_bn(InceptionI3d())
    path = tmp_path_factory.mktemp("w") / "i3d_pretrained_400.pt"
    sd = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(sd, path)  # the VideoGPT file has no BatchNorm counters
    return model, path


class StyleGANVStandIn(nn.Module):
    """Same call signature as StyleGAN-V's i3d_torchscript.pt; returns facts about its input as 'features'."""

    def forward(self, x: torch.Tensor, rescale: bool = False, resize: bool = False,
                return_features: bool = False) -> torch.Tensor:
        b = x.shape[0]
        facts = torch.stack([x.amin(dim=(1, 2, 3, 4)), x.amax(dim=(1, 2, 3, 4)), x.mean(dim=(1, 2, 3, 4))], 1)
        shape = torch.tensor([float(x.shape[1]), float(x.shape[2]), float(x.shape[3]), float(x.shape[4])])
        flags = torch.tensor([float(rescale), float(resize), float(return_features)])
        return torch.cat([facts, shape.expand(b, 4), flags.expand(b, 3)], 1)


def test_i3d_parameter_names_follow_the_videogpt_file():
    sd = InceptionI3d().state_dict()
    assert sd["Conv3d_1a_7x7.conv3d.weight"].shape == (64, 3, 7, 7, 7)
    assert sd["Mixed_4f.b1b.bn.running_var"].shape == (320,)
    assert sd["Mixed_5c.b3b.conv3d.weight"].shape == (128, 832, 1, 1, 1)
    assert sd["logits.conv3d.weight"].shape == (400, 1024, 1, 1, 1) and sd["logits.conv3d.bias"].shape == (400,)
    assert not any(k.startswith("logits.bn") for k in sd)


def test_i3d_state_dict_round_trip_full_size(i3d_file):
    model, path = i3d_file
    video = torch.rand(1, 3, 16, 32, 32) * 2 - 1
    ex = load_i3d(path)
    assert ex.comparable and ex.weights_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    with torch.no_grad():
        expect = model(resize_video(video, 224))  # full-size forward: (1, 3, 16, 224, 224) -> (1, 400)
    got = ex(video)
    assert got.shape == (1, 400)
    np.testing.assert_allclose(got, expect.double().numpy(), rtol=1e-4, atol=1e-5)


def test_i3d_pool_features_and_safetensors(i3d_file, tmp_path):
    from safetensors.torch import save_file

    model, path = i3d_file
    st = tmp_path / "i3d.safetensors"
    save_file({k: v.contiguous() for k, v in torch.load(path, weights_only=True).items()}, str(st))
    video = torch.rand(1, 3, 8, 16, 16) * 2 - 1
    a, b = load_i3d(path, "pool"), load_i3d(st, "pool")
    a.input_size = b.input_size = 32  # reduced forward: pools globally over the small map
    fa, fb = a(video), b(video)
    assert fa.shape == (1, 1024)
    np.testing.assert_allclose(fa, fb, rtol=1e-6)
    with torch.no_grad():
        np.testing.assert_allclose(fa, model.features(resize_video(video, 32)).double().numpy(), rtol=1e-4, atol=1e-6)


def test_identical_sets_give_zero_fvd_with_state_dict_i3d(i3d_file):
    ex = load_i3d(i3d_file[1])
    ex.input_size = 32
    videos = torch.rand(3, 3, 8, 16, 16) * 2 - 1
    feats = ex(videos)
    assert frechet_distance_features(feats, ex(videos)) == pytest.approx(0.0, abs=1e-4)


def test_torchscript_stand_in_called_like_stylegan_v(tmp_path):
    path = tmp_path / "i3d_torchscript.pt"
    torch.jit.script(StyleGANVStandIn()).save(str(path))
    ex = load_i3d(path)
    assert ex.name == "i3d-torchscript" and ex.comparable
    video = torch.rand(2, 3, 6, 20, 12) * 2 - 1
    f = ex(video)
    lo, hi = f[:, 0], f[:, 1]
    assert (lo >= -1).all() and (hi <= 1).all() and (lo < 0).all()  # [-1, 1] scaled, not [0, 1]
    np.testing.assert_array_equal(f[:, 3:7], [[3, 6, 224, 224]] * 2)  # (B, 3, T, 224, 224)
    np.testing.assert_array_equal(f[:, 7:], [[0, 0, 1]] * 2)  # rescale=False, resize=False, return_features=True
    # identical sets give FVD ≈ 0 with this extractor too
    g = torch.randn(4, 3, 6, 8, 8).clamp(-1, 1)
    assert frechet_distance_features(ex(g), ex(g.clone())) == pytest.approx(0.0, abs=1e-8)


def test_inception_round_trip_and_names(tmp_path):
    torch.manual_seed(1)
    model = randomize_bn(FIDInceptionV3(), seed=1)
    sd = model.state_dict()
    assert sd["fc.weight"].shape == (1008, 2048)
    assert sd["Mixed_7c.branch3x3dbl_3b.conv.weight"].shape == (384, 384, 3, 1)
    assert sd["Mixed_6e.branch7x7dbl_5.bn.running_mean"].shape == (192,)
    assert not any(k.startswith("AuxLogits") for k in sd)
    path = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(sd, path)
    ex = load_inception(path)
    assert ex.kind == "image" and ex.input_size == 299 and ex.comparable
    video = torch.rand(1, 3, 2, 16, 16) * 2 - 1  # two frames -> two images
    got = ex(video)
    assert got.shape == (2, 2048)
    with torch.no_grad():
        frames = resize_video(video, 299)[0].permute(1, 0, 2, 3)  # (2, 3, 299, 299)
        np.testing.assert_allclose(got, model.features(frames).double().numpy(), rtol=1e-4, atol=1e-5)


def test_wrong_formats_are_refused_naming_accepted_ones(tmp_path, i3d_file):
    text = tmp_path / "weights.pt"
    text.write_text("not weights")
    with pytest.raises(VidiffError, match="accepted formats"):
        load_i3d(text)
    with pytest.raises(VidiffError, match="accepted formats.*pytorch-fid"):
        load_inception(i3d_file[1])  # an I3D file given as Inception
    other = tmp_path / "other.pt"
    torch.save({"conv.weight": torch.zeros(3)}, other)
    with pytest.raises(VidiffError, match="does not match InceptionI3d.*accepted formats"):
        load_i3d(other)
    ts = tmp_path / "ts.pt"
    torch.jit.script(StyleGANVStandIn()).save(str(ts))
    with pytest.raises(VidiffError, match="TorchScript"):
        load_inception(ts)
    with pytest.raises(VidiffError, match="not found"):
        load_i3d(tmp_path / "missing.pt")


def test_fallback_is_deterministic_labelled_and_zero_on_identical_sets():
    video = torch.rand(4, 3, 8, 16, 16) * 2 - 1
    a, b = fallback_extractor("video"), fallback_extractor("video")
    assert not a.comparable and "random" in a.name and a.weights_sha256 is None
    np.testing.assert_array_equal(a(video), b(video))
    assert frechet_distance_features(a(video), a(video.clone())) == pytest.approx(0.0, abs=1e-6)
    assert fallback_extractor("video", seed=1)(video).shape == a(video).shape
    assert not np.allclose(fallback_extractor("video", seed=1)(video), a(video))
    img = fallback_extractor("image")
    assert img(video).shape[0] == 4 * 8 and "random" in img.name


def test_fallback_separates_static_from_moving_videos():
    g = torch.Generator().manual_seed(0)
    base = torch.rand(6, 3, 1, 16, 16, generator=g) * 2 - 1
    static = base.expand(-1, -1, 8, -1, -1)
    noisy = static + 0.5 * torch.randn(6, 3, 8, 16, 16, generator=g)
    ex = fallback_extractor("video")
    same = frechet_distance_features(ex(static), ex(static + 0.01 * torch.randn(6, 3, 8, 16, 16, generator=g)))
    assert frechet_distance_features(ex(static), ex(noisy.clamp(-1, 1))) > 10 * same
