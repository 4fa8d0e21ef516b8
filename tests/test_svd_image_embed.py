"""The conditioning frame's image embedding of vidiff's SVD-style image-to-video model (`--image-embed`): the
embedding reaches the output through cross-attention and the time embedding, is dropped with the frame to the
model's null, trains jointly with the backbone, is recorded in the checkpoint and rebuilt by `vidiff sample
--image` on a pixel and on a latent model; a recipe that cannot embed a frame is one line."""
import json

import numpy as np
import pytest
import torch

from vidiff.checkpoint import load_state_dict
from vidiff.conditioning import Cond, null_like
from vidiff.conditioning.content import CONTENT_DIM, CONTENT_TOKENS
from vidiff.conditioning.image_embed import check_image_embed, image_embed_overrides, with_frame_embedding
from vidiff.conditioning.tasks import known_frames_concat, request_cond, training_cond
from vidiff.diffusion.loss import diffusion_loss
from vidiff.diffusion.schedule import CosineSchedule
from vidiff.models import DiT, DiTConfig, UNet3D, UNet3DConfig
from vidiff.models.vae import VAEConfig, VideoAutoencoder, save_vae
from vidiff.pipelines import load_pipeline
from vidiff.utils import VidiffError

from ._tiny import TINY, run

UNET = UNet3DConfig(base_channels=8, channel_mults=(1, 2), attention_levels=(1,), head_dim=8, norm_groups=4,
                    cond_channels=4, **image_embed_overrides(3))
DIT = DiTConfig(hidden_size=16, depth=1, heads=2, patch_size=2, cond_channels=4, **image_embed_overrides(3))


def _perturbed(make, cfg):
    torch.manual_seed(0)
    model = make(cfg)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    return model.eval()


@pytest.mark.parametrize("make, cfg", [(UNet3D, UNET), (DiT, DIT)])
def test_embedding_reaches_the_output_and_drops_to_the_null(make, cfg):
    """Same x_t and concatenated frame, two embedded images: different outputs; the tokens reach every
    cross-attention and the pooled vector the time embedding. Dropped, both give the model's null, which is
    also what a request without an image gives."""
    model = _perturbed(make, cfg)
    g = torch.Generator().manual_seed(2)
    x, t = torch.randn(2, 3, 4, 8, 8, generator=g), torch.rand(2, generator=g)
    frame = torch.rand(2, 3, 8, 8, generator=g) * 2 - 1
    other = torch.rand(2, 3, 8, 8, generator=g) * 2 - 1
    concat = known_frames_concat(frame[:, :, None], 4)  # (2, 4, 4, 8, 8): both requests share it
    seen = {}
    hooks = [model.pooled_proj.register_forward_hook(lambda m, i, o: seen.update(pooled=i[0].shape)),
             model.content_encoder.register_forward_hook(lambda m, i, o: seen.update(tokens=o.shape))]
    with torch.no_grad():
        a = model(x, t, with_frame_embedding(Cond(concat=concat), frame, 2))
        b = model(x, t, with_frame_embedding(Cond(concat=concat), other, 2))
        null_a = model(x, t, null_like(with_frame_embedding(Cond(concat=concat), frame, 2), keep_concat=True))
        null_b = model(x, t, null_like(with_frame_embedding(Cond(concat=concat), other, 2), keep_concat=True))
        null_request = model(x, t, with_frame_embedding(Cond(concat=concat), None, 2))
    for h in hooks:
        h.remove()
    assert seen == {"pooled": (2, CONTENT_DIM), "tokens": (2, CONTENT_TOKENS, CONTENT_DIM)}
    assert (a - b).abs().max() > 1e-3
    assert torch.equal(null_a, null_b)
    torch.testing.assert_close(null_request, null_a, rtol=1e-5, atol=1e-6)
    assert (null_a - a).abs().max() > 1e-3
    with pytest.raises(VidiffError, match="embeds an image") as e:  # the frame alone, its embedding forgotten
        model(x, t, Cond(concat=concat))
    assert "\n" not in str(e.value)


def test_the_embedding_trains_with_the_backbone():
    """One loss on an embedded frame sends gradient into the image encoder (it is trained jointly)."""
    model = _perturbed(UNet3D, UNET).train()
    g = torch.Generator().manual_seed(3)
    x0 = torch.rand(2, 3, 4, 8, 8, generator=g) * 2 - 1
    cond = training_cond(("first_frame",), x0=x0, drop_prob=0.0, generator=g, image_embed=True)
    diffusion_loss(model, x0, CosineSchedule(), cond=cond, generator=g).backward()
    grads = [p.grad for p in model.content_encoder.parameters()]
    assert all(gr is not None for gr in grads) and sum(gr.abs().sum() for gr in grads) > 0


def test_training_and_request_conds_embed_the_frame_the_concat_carries():
    g = torch.Generator().manual_seed(4)
    x0 = torch.rand(16, 3, 4, 8, 8, generator=g) * 2 - 1
    cond = training_cond(("first_frame",), x0=x0, drop_prob=0.5, generator=torch.Generator().manual_seed(0),
                         image_embed=True)
    assert torch.equal(cond.content, x0[:, :, 0])  # the clean frame, in the model's own space
    frame_dropped = cond.concat[:, 3, 0].amax(dim=(1, 2)) == 0  # the mask channel at frame 0
    assert torch.equal(cond.drop, frame_dropped) and 0 < int(cond.drop.sum()) < 16  # dropped with the frame
    plain = training_cond(("first_frame",), x0=x0, drop_prob=0.5, generator=torch.Generator().manual_seed(0))
    assert plain.content is None and plain.drop is None and torch.equal(plain.concat, cond.concat)

    image = x0[0, :, 0]  # (3, H, W)
    req = request_cond(("first_frame",), 3, frames=4, image=image, image_embed=True)
    assert req.content.shape == (3, 3, 8, 8) and torch.equal(req.content[2], image) and not req.drop.any()
    null = request_cond(("first_frame",), 3, frames=4, image_embed=True)
    assert null.concat is None and null.content is None and null.drop.all() and null.text.shape == (3, 1, CONTENT_DIM)
    assert request_cond(("first_frame",), 3, frames=4, image=image).content is None


def test_recipes_that_cannot_embed_a_frame_are_one_line():
    check_image_embed(False, ())
    check_image_embed(True, ("first_frame", "trajectory"))
    for kinds, words in (((), "--condition first_frame"), (("text", "first_frame"), "'text'"),
                         (("class", "first_frame"), "'class'")):
        with pytest.raises(VidiffError, match=words) as e:
            check_image_embed(True, kinds)
        assert "\n" not in str(e.value)


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    """Four 5-frame 16x16 clips of a square of a different colour each, and the first frame of one as a PNG."""
    from PIL import Image

    d = tmp_path_factory.mktemp("embed_shapes")
    for i in range(4):
        v = np.zeros((5, 16, 16, 3), np.uint8)
        for f in range(5):
            v[f, 6:10, 2 + f:6 + f] = [200, 60 * i, 250 - 60 * i]
        np.save(d / f"v{i}.npy", v)
    Image.fromarray(np.load(d / "v1.npy")[0]).save(d / "first.png")
    (d / "tiny.json").write_text(json.dumps(TINY))
    return d


def _train(shapes, out, *extra):
    return ["train", "--data", shapes, "--model", shapes / "tiny.json", "--frames", "4", "--size", "16",
            "--steps", "2", "--batch", "2", "--condition", "first_frame", "--image-embed", "--sample-every", "0",
            "--save-every", "0", "--out", out, *extra]


def test_pixel_model_trains_records_reloads_and_samples(shapes, tmp_path, capsys):
    code, _, err = run(capsys, *_train(shapes, tmp_path / "run", "--schedule", "edm", "--cond-noise-aug", "0.1"))
    assert code == 0, err
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["model"]["content_channels"] == 3 and cfg["model"]["text_dim"] == CONTENT_DIM
    assert cfg["conditioning"]["image_embed"] is True and cfg["train"]["image_embed"] is True
    weights = load_state_dict(tmp_path / "run" / "model.safetensors")
    pipe = load_pipeline(str(tmp_path / "run"))
    assert pipe.model.config.content_channels == 3
    own = pipe.model.state_dict()
    assert any(k.startswith("content_encoder.") for k in weights) and set(own) == set(weights)
    assert all(torch.equal(own[k], weights[k]) for k in weights)
    cond = pipe.make_cond(2, 4, 16, image=shapes / "first.png")
    assert cond.content.shape == (2, 3, 16, 16) and torch.equal(cond.content[0], cond.concat[0, :3, 0])

    outs = {}
    for name, extra in (("image", ["--image", shapes / "first.png", "--guidance", "1"]), ("null", [])):
        code, _, err = run(capsys, "sample", "--model", tmp_path / "run", "--num", "2", "--steps", "2", "--format",
                           "npy", "--out", tmp_path / name, *extra)
        assert code == 0, err
        outs[name] = np.load(tmp_path / name / "samples.npy")
        assert outs[name].shape == (2, 4, 16, 16, 3)
    assert not np.array_equal(outs["image"], outs["null"])


def test_latent_model_embeds_the_latent_frame(shapes, tmp_path, capsys):
    torch.manual_seed(0)
    save_vae(tmp_path / "vae", VideoAutoencoder(VAEConfig(base_channels=8, norm_groups=4, spatial_factor=4,
                                                          mid_attention=False)))
    code, _, err = run(capsys, *_train(shapes, tmp_path / "run", "--latent", tmp_path / "vae"))
    assert code == 0, err
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    pipe = load_pipeline(str(tmp_path / "run"))
    c, f, h, w = pipe.sample_shape(4, 16)
    assert cfg["model"]["content_channels"] == c == cfg["model"]["in_channels"]
    cond = pipe.make_cond(1, 4, 16, image=shapes / "first.png")
    assert cond.content.shape == (1, c, h, w) and torch.equal(cond.content[0], cond.concat[0, :c, 0])
    code, _, err = run(capsys, "sample", "--model", tmp_path / "run", "--image", shapes / "first.png", "--num", "1",
                       "--steps", "2", "--format", "npy", "--out", tmp_path / "o")
    assert code == 0, err
    assert np.load(tmp_path / "o" / "samples.npy").shape == (1, 4, 16, 16, 3)


def test_image_embed_without_the_first_frame_condition_is_one_line(shapes, tmp_path, capsys):
    for condition in ("none", "class"):
        code, _, err = run(capsys, *_train(shapes, tmp_path / condition, "--condition", condition))
        assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
        assert "--image-embed" in err
    assert not (tmp_path / "none").exists()
    image = tmp_path / "image_model"  # an image model trained without the embedding under a video recipe with it
    image.mkdir()
    (image / "config.json").write_text(json.dumps({"conditioning": {"condition": "first_frame"}}))
    code, _, err = run(capsys, *_train(shapes, tmp_path / "ldm", "--init-image", image))
    last = err.splitlines()[-1]  # after the progress bar of decoding the clips
    assert code == 2 and last.startswith("error: ") and "without --image-embed" in last and err.count("error") == 1

