"""The web UI's tab functions without a browser: model catalogue, generation, uploads, animation and
poking, video operations."""
import shutil

import numpy as np
import pytest
from PIL import Image

from vidiff.data import io
from vidiff.dynamics.procedural import make_scene
from vidiff.pipelines import resolve_model
from vidiff.ui import animate, generate, uploads, video_ops
from vidiff.utils import VidiffError


@pytest.fixture(scope="module")
def tiny():
    return generate.pipeline_for("shapes-tiny", generate.model_choices(None))


# --- Generate ---------------------------------------------------------------------------------------

def test_model_choices_lists_bundled_and_runs_checkpoints(tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(resolve_model("shapes-tiny"), runs / "exp1")
    (runs / "notes").mkdir()
    (runs / "notes" / "config.json").write_text('{"lr": 1}')  # not a video checkpoint
    shutil.copytree(resolve_model("shapes-tsr-tiny"), runs / "sr")  # a super-resolution stage: no Generate
    choices = generate.model_choices(runs)
    assert "shapes-tiny" in choices and choices["runs/exp1"] == runs / "exp1"
    assert "runs/notes" not in choices and "runs/sr" not in choices
    assert not any("tsr" in k or "ssr" in k for k in choices)
    pipe = generate.pipeline_for("runs/exp1", choices)
    assert generate.model_inputs(pipe) == generate.model_inputs(generate.pipeline_for("shapes-tiny", choices))


def test_pipeline_for_only_accepts_listed_labels():
    choices = generate.model_choices(None)
    for label in ("../../etc", str(resolve_model("shapes-tiny")), "/tmp"):
        with pytest.raises(VidiffError, match="unknown model"):
            generate.pipeline_for(label, choices)


def test_model_inputs_follow_the_conditions():
    choices = generate.model_choices(None)
    t2v = generate.model_inputs(generate.pipeline_for("shapes-t2v-tiny", choices))
    i2v = generate.model_inputs(generate.pipeline_for("shapes-i2v-tiny", choices))
    base = generate.model_inputs(generate.pipeline_for("shapes-tiny", choices))
    assert (t2v.prompt, t2v.image, t2v.class_id, t2v.guidance) == (True, False, False, True)
    assert (i2v.prompt, i2v.image, i2v.class_id) == (False, True, False)
    assert (base.prompt, base.image, base.class_id, base.guidance) == (False, False, False, False)
    assert base.autoguidance is not None  # shapes-tiny ships its guide


def test_generate_writes_what_the_pipeline_samples(tiny, tmp_path):
    res = generate.generate(tiny, tmp_path, steps=2, seed=0, sampler="ddim", progress=False)
    direct = tiny(num=1, steps=2, seed=0, sampler="ddim").numpy()
    np.testing.assert_array_equal(res.videos, direct)
    mp4, gif = io.read_video(res.mp4), io.read_video(res.gif)
    scale = generate.view_scale(32)
    assert mp4.shape == gif.shape == (16, 32 * scale, 32 * scale, 3)
    # nearest-neighbour upscaling of the sampled frames: the GIF's palette is exact for these few colours
    assert np.abs(gif[:, ::scale, ::scale].astype(int) - direct[0].astype(int)).mean() < 2
    assert "16 frames" in res.summary and "seed 0" in res.summary


def test_generate_rejects_missing_and_bad_inputs(tiny, tmp_path):
    choices = generate.model_choices(None)
    with pytest.raises(VidiffError, match="prompt"):
        generate.generate(generate.pipeline_for("shapes-t2v-tiny", choices), tmp_path, prompt="  ", steps=1)
    with pytest.raises(VidiffError, match="upload an image"):
        generate.generate(generate.pipeline_for("shapes-i2v-tiny", choices), tmp_path, steps=1)
    with pytest.raises(VidiffError, match="steps"):
        generate.generate(tiny, tmp_path, steps=0)
    with pytest.raises(VidiffError, match="sampler"):
        generate.generate(tiny, tmp_path, steps=1, sampler="euler-bogus")
    assert not list(tmp_path.iterdir())  # nothing half-written


# --- uploads --------------------------------------------------------------------------------------

def test_photo_type_is_read_from_the_bytes(tmp_path):
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (40, 600, 3), dtype=np.uint8)
    disguised = tmp_path / "photo.mp4"
    Image.fromarray(arr).save(disguised, format="PNG")
    out = uploads.read_photo(disguised, max_side=300)
    assert out.shape == (20, 300, 3)  # decoded despite the name, longer side fitted
    assert abs(out.mean() - arr.mean()) < 3
    fake = tmp_path / "photo.png"
    fake.write_text("<html>not an image</html>")
    with pytest.raises(VidiffError, match="not an image"):
        uploads.read_photo(fake)
    with pytest.raises(VidiffError, match="no photo"):
        uploads.read_photo(None)


def test_uploads_are_bounded(tmp_path, monkeypatch):
    big = tmp_path / "big.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(big)  # ~12 kB
    monkeypatch.setattr(uploads, "MAX_UPLOAD_MB", 0.005)
    with pytest.raises(VidiffError, match="MB limit"):
        uploads.read_photo(big)
    monkeypatch.undo()
    long_gif = tmp_path / "long.gif"
    io.write_gif(long_gif, np.repeat(np.arange(uploads.MAX_VIDEO_FRAMES + 1, dtype=np.uint8)[:, None, None, None] * 3,
                                     8, axis=1).repeat(8, axis=2).repeat(3, axis=3))
    with pytest.raises(VidiffError, match="frames"):
        uploads.read_video(long_gif)


def test_video_type_is_read_from_the_bytes(tmp_path):
    frames = np.zeros((6, 16, 16, 3), np.uint8)
    for i in range(6):
        frames[i, :, 2 * i:2 * i + 4] = 255  # a bar moving right
    gif_named_mp4, mp4_named_gif = tmp_path / "a.gif", tmp_path / "b.mp4"
    io.write_gif(gif_named_mp4, frames, fps=10)
    io.write_mp4(mp4_named_gif, frames, fps=10)
    gif_named_mp4 = gif_named_mp4.rename(tmp_path / "clip.mp4")
    mp4_named_gif = mp4_named_gif.rename(tmp_path / "clip.gif")
    for path in (gif_named_mp4, mp4_named_gif):
        got, fps = uploads.read_video(path)
        assert got.shape == frames.shape and abs(fps - 10) < 0.5
        assert np.abs(got.astype(int) - frames).mean() < 8
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(VidiffError, match="not a video"):
        uploads.read_video(junk)


# --- Animate a photo -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def scene():
    s = make_scene(seed=1, size=(48, 64), frames=30, k=8, render_video=False)
    return s.image, {"spectral_volume": s.spectral_volume, "period": s.period, "fps": 30.0}, s.mask


def test_click_picks_point_then_drag_then_starts_over():
    st = animate.click({"start": None, "end": None}, 3, 4)
    assert st == {"start": (3.0, 4.0), "end": None}
    st = animate.click(st, 10, 2)
    assert st == {"start": (3.0, 4.0), "end": (10.0, 2.0)}
    assert animate.click(st, 7, 7) == {"start": (7.0, 7.0), "end": None}


def test_animate_moves_the_moving_parts_only(scene, tmp_path):
    photo, motion, mask = scene
    clip = animate.animate_photo(photo, motion, tmp_path, frames=12, loop=True, magnify=2.0)
    assert clip.frames.shape == (12, 48, 64, 3)
    spread = clip.frames.astype(float).std(axis=0).mean(axis=-1)  # (H, W) change over time
    assert spread[mask].mean() > 5 * spread[~mask].mean()
    assert io.read_video(clip.mp4).shape[0] == 12
    xt = np.asarray(Image.open(clip.xt))
    assert xt.shape == (12 * 2, 64 * 2, 3)  # frames x width, shown at 2x
    with pytest.raises(VidiffError, match="magnification"):
        animate.animate_photo(photo, motion, tmp_path, frames=4, magnify=0)


def test_poke_moves_the_scene_and_depends_on_the_drag(scene, tmp_path):
    photo, motion, mask = scene
    ys, xs = np.nonzero(mask)
    x, y = float(xs[len(xs) // 2]), float(ys[len(ys) // 2])
    a = animate.poke_photo(photo, motion, tmp_path / "a", x=x, y=y, dx=6, dy=0, frames=10)
    b = animate.poke_photo(photo, motion, tmp_path / "b", x=x, y=y, dx=-6, dy=0, frames=10)
    assert a.frames.shape == (10, 48, 64, 3)
    assert np.abs(a.frames.astype(int) - photo).max() > 20  # the poke moves something
    assert not np.array_equal(a.frames, b.frames)  # the opposite drag gives another response
    assert np.asarray(Image.open(a.xt)).shape == (20, 128, 3)
    with pytest.raises(VidiffError, match="drag is zero"):
        animate.poke_photo(photo, motion, tmp_path, x=x, y=y, dx=0, dy=0)
    with pytest.raises(VidiffError, match="outside"):
        animate.poke_photo(photo, motion, tmp_path, x=500, y=y, dx=1, dy=0, frames=2)


def test_photo_motion_from_the_bundled_model_fits_the_photo(scene):
    photo = scene[0]
    m = animate.photo_motion(photo, seed=0, steps=2)
    assert m["spectral_volume"].shape[1:] == (4, 48, 64)
    assert np.isfinite(m["spectral_volume"].numpy()).all()


def test_draw_poke_marks_an_upscaled_copy(scene):
    photo = scene[0]
    s = animate.display_scale(photo)
    assert s >= 2  # a 64-pixel photo is shown larger
    plain = animate.draw_poke(photo, None, None)
    assert plain.shape == (photo.shape[0] * s, photo.shape[1] * s, 3)
    np.testing.assert_array_equal(plain[::s, ::s], photo)
    drawn = animate.draw_poke(photo, (10, 10), (30, 20))
    changed = np.argwhere((drawn != plain).any(-1))  # (n, 2) canvas pixels (row, col) drawn over
    assert len(changed) and np.abs(changed // s - [10, 10]).min(0).max() <= 1  # the mark sits at the point
    assert photo.flags.writeable and np.array_equal(photo, scene[0])


# --- Extend / interpolate / upsample -------------------------------------------------------------

@pytest.fixture(scope="module")
def clip(tiny):
    return tiny(num=1, steps=2, seed=3).numpy()[0][:8]  # uint8 (8, 32, 32, 3)


def test_extend_and_interpolate_keep_the_given_frames(tiny, clip, tmp_path):
    ext = video_ops.run_operation("extend", clip, 8.0, tiny, tmp_path / "e", frames=16, steps=2)
    assert ext.frames.shape == (16, 32, 32, 3) and ext.fps == 8.0
    assert np.abs(ext.frames[:8].astype(int) - clip).max() <= 1
    itp = video_ops.run_operation("interpolate", clip, 8.0, tiny, tmp_path / "i", factor=2, steps=2)
    assert itp.frames.shape[0] == 15 and itp.fps == 16.0
    assert np.abs(itp.frames[::2].astype(int) - clip).max() <= 1
    assert io.read_video(itp.mp4).shape[0] == 15
    with pytest.raises(VidiffError, match="total frames"):
        video_ops.run_operation("extend", clip, 8.0, tiny, tmp_path, frames=4, steps=1)
    with pytest.raises(VidiffError, match="unknown operation"):
        video_ops.run_operation("../x", clip, 8.0, tiny, tmp_path)


def test_upsample_stages_double_time_or_space(clip, tmp_path):
    sr = video_ops.sr_choices()
    tsr, ssr = generate.load(sr["tsr"]), generate.load(sr["ssr"])
    assert "tsr" in tsr.condition and "ssr" in ssr.condition
    t = video_ops.run_operation("upsample time x2", clip, 8.0, tsr, tmp_path / "t", steps=2)
    assert t.frames.shape == (16, tsr.video.size, tsr.video.size, 3) and t.fps == 16.0
    s = video_ops.run_operation("upsample space x2", clip, 8.0, ssr, tmp_path / "s", steps=2)
    assert s.frames.shape == (8, ssr.video.size, ssr.video.size, 3) and s.fps == 8.0
