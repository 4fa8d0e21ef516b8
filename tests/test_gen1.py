"""Gen-1 structure/content editing: structure extractors, structure fidelity, depth-folder checks, the
content encoder inside the backbone, and a tiny train -> edit run."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from vidiff.conditioning import Cond, null_like
from vidiff.conditioning.content import ContentEncoder, structure_of
from vidiff.conditioning.structure import canny_edges, degrade, depth_files, extract, flow_fields, parse_structure
from vidiff.conditioning.tasks import model_overrides, parse_condition, request_cond, training_cond
from vidiff.models import build_model
from vidiff.models.presets import get_preset
from vidiff.utils import VidiffError


def square_video(frames=4, size=32, top=8, left=10, side=12, dx=0):
    """A white square on black moving dx pixels per frame: uint8 (F, H, W, 3)."""
    v = np.zeros((frames, size, size, 3), np.uint8)
    for t in range(frames):
        v[t, top:top + side, left + t * dx:left + t * dx + side] = 255
    return v


def test_edges_of_a_rendered_square_lie_on_its_border():
    v = square_video()
    e = canny_edges(v)  # (F, H, W)
    assert e.shape == (4, 32, 32)
    border = np.zeros((32, 32), bool)
    border[7:21, 9:23] = True
    border[9:19, 11:21] = False  # a 2-pixel ring around the square's outline (rows 8..19, cols 10..21)
    ys, xs = np.nonzero(e[0])
    assert len(ys) >= 40  # the perimeter is 44 pixels: most of it is found
    assert border[ys, xs].all()  # and nothing off the outline
    for side in (e[0, 7:21, 9:12], e[0, 7:21, 20:23], e[0, 7:10, 9:23], e[0, 18:21, 9:23]):
        assert side.sum() >= 8  # every side of the square is there
    s = extract(v, "edges")
    assert s.shape == (1, 4, 32, 32) and set(s.unique().tolist()) <= {-1.0, 1.0}


def test_flow_of_a_moving_square_points_along_its_motion():
    f = flow_fields(square_video(frames=3, dx=2))  # (F, 2, H, W), pixels / FLOW_SCALE
    inside = f[0, :, 10:18, 12:20]
    assert inside[0].mean() > 0.2 and abs(inside[1].mean()) < 0.1  # moves right, not up or down
    assert np.allclose(f[-1], f[-2])


def test_structure_strength_one_is_identity_and_lower_blurs_more():
    s = extract(square_video(), "edges")[None]  # (1, 1, F, H, W)
    assert torch.equal(degrade(s, 1.0), s)
    sharp = [((degrade(s, k) + 1) / 2 > 0.5).float().mean().item() for k in (1.0, 0.6, 0.2)]
    grads = [degrade(s, k).diff(dim=-1).abs().mean().item() for k in (1.0, 0.6, 0.2)]
    assert grads[0] > grads[1] > grads[2]  # lower strength: smoother maps
    assert sharp[0] > 0  # and the strongest one still has its edges
    out = degrade(s.expand(2, -1, -1, -1, -1), torch.tensor([1.0, 0.0]))
    assert torch.equal(out[0], s[0]) and out[1].amax() <= 1 + 1e-5 and out[1].amin() >= -1 - 1e-5
    with pytest.raises(VidiffError, match="structure-strength"):
        degrade(s, 1.5)


def _write_depth(folder, names, size=16):
    folder.mkdir(exist_ok=True)
    for i, name in enumerate(names):
        Image.fromarray(np.full((size, size), 20 * i, np.uint8)).save(folder / name)


@pytest.mark.parametrize("names, match", [
    (["0.png", "1.png", "3.png", "4.png"], "frame 2 is missing"),
    (["frame_0.png", "frame_1.png", "frame_2.png"], "has 3 maps but the video has 4"),
    (["a.png", "1.png", "2.png", "3.png"], "no frame number"),
    (["5.png", "6.png", "7.png", "8.png"], "start at frame 5"),
    (["01.png", "1.png", "2.png", "3.png"], "two files for frame 1"),
    ([], "holds no image files"),
])
def test_misnumbered_or_missing_depth_files_are_refused_in_one_line(tmp_path, names, match):
    _write_depth(tmp_path / "d", names)
    with pytest.raises(VidiffError, match=match) as e:
        depth_files(tmp_path / "d", 4)
    assert "\n" not in str(e.value)


def test_depth_folder_in_frame_order_and_spec_parsing(tmp_path):
    _write_depth(tmp_path / "d", [f"depth_{i:03d}.png" for i in (1, 2, 3, 10)][:3] + ["depth_004.png"])
    files = depth_files(tmp_path / "d", 4)
    assert [p.name for p in files] == ["depth_001.png", "depth_002.png", "depth_003.png", "depth_004.png"]
    assert parse_structure(f"depth:{tmp_path / 'd'}") == ("depth", tmp_path / "d")
    assert parse_structure("edges") == ("edges", None)
    for bad, match in (("depth", "depth:DIR"), ("normals", "unknown --structure")):
        with pytest.raises(VidiffError, match=match):
            parse_structure(bad)
    with pytest.raises(VidiffError, match="not found"):
        depth_files(tmp_path / "nope", 4)


def test_depth_maps_give_the_edges_of_their_discontinuities():
    depth = square_video()[..., 0] // 2  # (F, H, W): a near square in front of a far background
    assert torch.equal(extract(square_video(), "edges", depth=depth), extract(depth[..., None].repeat(3, -1),
                                                                              "edges"))


def _gen1_model(kind="gen1"):
    cfg = dataclasses.replace(get_preset("unet-tiny"), base_channels=16, channel_mults=(1, 2), attention_levels=(1,),
                              **model_overrides(parse_condition(kind)))
    torch.manual_seed(0)
    return build_model(cfg)


def test_content_reaches_the_backbone_and_drop_swaps_in_the_null_condition():
    model = _gen1_model().eval()
    x = torch.randn(2, 3, 4, 16, 16)
    t = torch.full((2,), 0.5)
    s = torch.zeros(2, 1, 4, 16, 16)
    with torch.no_grad():
        for p in model.content_encoder.to_tokens[-1].parameters():
            p.normal_(0, 0.5)  # a freshly trained encoder, not the small init
        red = torch.tensor([1.0, -1, -1])[:, None, None].expand(3, 16, 16)
        blue = torch.tensor([-1.0, -1, 1])[:, None, None].expand(3, 16, 16)
        c1 = Cond(concat=s, content=torch.stack([red, red]))
        c2 = Cond(concat=s, content=torch.stack([red, blue]))
        a, b = model(x, t, c1), model(x, t, c2)
        assert torch.allclose(a[0], b[0], atol=1e-5) and not torch.allclose(a[1], b[1], atol=1e-3)
        n1, n2 = model(x, t, null_like(c1, keep_concat=True)), model(x, t, null_like(c2, keep_concat=True))
        assert torch.allclose(n1, n2, atol=1e-5)  # dropped content: the same null condition for any reference
    enc = ContentEncoder(3, 8, tokens=3)
    assert enc(torch.zeros(5, 3, 16, 16)).shape == (5, 3, 8)


def test_training_cond_and_request_refusals():
    kinds = parse_condition("gen1")
    x0 = torch.from_numpy(square_video(frames=4, size=16, top=4, left=4, side=6, dx=1)).permute(3, 0, 1, 2)[None]
    x0 = x0.float() / 127.5 - 1  # (1, 3, F, H, W)
    g = torch.Generator().manual_seed(0)
    cond = training_cond(kinds, x0=x0.repeat(3, 1, 1, 1, 1), drop_prob=0.0, generator=g)
    assert cond.concat.shape == (3, 1, 4, 16, 16) and cond.content.shape == (3, 3, 16, 16)
    assert not cond.drop.any()
    frames_of_clip = [x0[0, :, i] for i in range(4)]
    assert all(any(torch.equal(c, f) for f in frames_of_clip) for c in cond.content)  # a frame of the same clip
    assert torch.equal(structure_of(x0, "edges"), extract(square_video(4, 16, 4, 4, 6, 1), "edges")[None])
    with pytest.raises(VidiffError, match="vidiff edit"):
        request_cond(kinds, 1, frames=4)
    for bad in ("gen1+text", "gen1+first_frame"):
        with pytest.raises(VidiffError):
            model_overrides(parse_condition(bad))
    with pytest.raises(VidiffError, match="pixel space"):
        model_overrides(kinds, channels=4)
    assert model_overrides(parse_condition("gen1_flow"))["cond_channels"] == 2


TINY_MODEL = {"arch": "unet3d", "base_channels": 8, "channel_mults": [1, 2], "num_res_blocks": 1,
              "attention_levels": [1], "head_dim": 8, "temporal": "attention"}


@pytest.fixture(scope="module")
def gen1_run(tmp_path_factory):
    """A Gen-1 model trained for 3 steps on 4 shapes clips (4 frames of 16x16) through the Python API."""
    import json

    from vidiff.data.synth import generate_shapes
    from vidiff.train import TrainConfig, train

    root = tmp_path_factory.mktemp("gen1")
    data = generate_shapes(root / "shapes", num=4, frames=4, size=16, fmt="npy", progress=False)
    (root / "tiny.json").write_text(json.dumps(TINY_MODEL))
    cfg = TrainConfig(data=str(data), out=str(root / "run"), model=str(root / "tiny.json"), frames=4, size=16,
                      batch=2, steps=3, lr=1e-3, warmup=1, log_every=1, save_every=0, sample_every=0,
                      condition="gen1", cache=False)
    return train(cfg), data


def test_tiny_gen1_model_trains_and_edits_a_video(gen1_run, tmp_path):
    from vidiff.checkpoint import read_config
    from vidiff.pipelines.gen1 import Gen1Editor

    run, data = gen1_run
    config = read_config(run)
    assert config["conditioning"]["condition"] == "gen1"
    assert config["model"]["content_channels"] == 3 and config["model"]["cond_channels"] == 1
    editor = Gen1Editor.from_pretrained(str(run))
    assert any(k.startswith("content_encoder.") for k in editor.pipe.model.state_dict())
    video = square_video(frames=4, size=24, top=6, left=6, side=8, dx=2)  # resized to the model's 16x16
    ref = np.zeros((20, 20, 3), np.uint8)
    ref[5:12, 5:12] = (235, 30, 30)
    out = editor.edit(video, ref, structure="edges", strength=0.7, steps=2, guidance=2.0, seed=1)
    assert out.shape == (4, 16, 16, 3) and out.dtype == np.uint8
    again = editor.edit(video, ref, structure="edges", strength=0.7, steps=2, guidance=2.0, seed=1)
    assert np.array_equal(out, again)  # seeded
    other = editor.edit(video, ref[..., ::-1].copy(), structure="edges", strength=0.7, steps=2, guidance=2.0, seed=1)
    assert not np.array_equal(out, other)  # the content reaches the output
    null = editor.edit(video, None, strength=0.7, steps=2, seed=1)  # structure alone: the null content
    assert null.shape == out.shape and not np.array_equal(null, editor.edit(video, ref, strength=0.7, steps=2,
                                                                            guidance=0.0, seed=1))
    with pytest.raises(VidiffError, match="trained on edges"):
        editor.edit(video, ref, structure="flow", steps=1)
    depth = tmp_path / "depth"
    _write_depth(depth, [f"{i}.png" for i in range(4)])
    assert editor.edit(video, ref, structure=f"depth:{depth}", steps=1).shape == (4, 16, 16, 3)
    _write_depth(depth, ["5.png"])
    with pytest.raises(VidiffError, match="frame 4 is missing"):
        editor.edit(video, ref, structure=f"depth:{depth}", steps=1)


def test_edit_cli_gen1_and_its_one_line_errors(gen1_run, tmp_path):
    from vidiff.cli import main
    from vidiff.data.io import read_video, write_png, write_video

    run, data = gen1_run
    clip = write_video(tmp_path / "in.npy", square_video(frames=4, size=16, top=4, left=4, side=6, dx=1))
    ref = write_png(tmp_path / "ref.png", np.full((16, 16, 3), 200, np.uint8))
    out = tmp_path / "out.npy"
    base = ["edit", str(clip), "--model", str(run), "--steps", "2"]
    assert main(base + ["--content", str(ref), "--structure-strength", "0.5", "--out", str(out)]) == 0
    assert read_video(out).shape == (4, 16, 16, 3)
    (tmp_path / "notimage.png").write_text("hello")
    cases = [
        (["--content", str(tmp_path / "notimage.png")], "cannot read image"),
        (["--content", str(tmp_path / "missing.png")], "not found"),
        (["--content", str(ref), "--structure", f"depth:{tmp_path / 'nodir'}"], "depth folder"),
        (["--content", str(ref), "--structure-strength", "2"], "structure-strength"),
        (["--content", str(ref), "--prompt", "a cat"], "not --prompt"),
    ]
    for extra, match in cases:
        assert main(base + extra + ["--out", str(tmp_path / "bad.npy")]) == 2
        assert not (tmp_path / "bad.npy").exists()
    with pytest.raises(VidiffError, match="not trained for Gen-1"):
        from vidiff.pipelines.gen1 import Gen1Editor

        Gen1Editor.from_pretrained("shapes-tiny")


def test_flow_structure_model_edits_with_flow_and_refuses_depth(tmp_path):
    from vidiff.diffusion.config import DiffusionConfig, VideoFormat
    from vidiff.pipelines.base import VideoPipeline
    from vidiff.pipelines.gen1 import Gen1Editor

    pipe = VideoPipeline(_gen1_model("gen1_flow"), DiffusionConfig(), VideoFormat(frames=4, size=16),
                         config={"conditioning": {"condition": "gen1_flow"}}, name="flow")
    editor = Gen1Editor(pipe)
    video = square_video(frames=4, size=16, top=4, left=2, side=6, dx=2)
    s = editor.structure(video, "flow")
    assert s.shape == (2, 4, 16, 16) and s[0, 0, 5:9, 3:7].mean() > 0.2  # dx > 0 on the moving square
    assert editor.edit(video, video[0], structure="flow", steps=1).shape == (4, 16, 16, 3)
    _write_depth(tmp_path / "d", [f"{i}.png" for i in range(4)])
    with pytest.raises(VidiffError, match="edge-structure model"):
        editor.edit(video, video[0], structure=f"depth:{tmp_path / 'd'}", steps=1)
    with pytest.raises(VidiffError, match="trained on flow"):
        editor.edit(video, video[0], structure="edges", steps=1)
