"""`vidiff ui`: the Gradio app. Tabs: Generate, Animate a photo (and poke it), Extend / interpolate /
upsample a video. The work behind each tab is plain Python in generate.py, animate.py and video_ops.py;
this module lays out the page and turns a `VidiffError` into a one-line message in it.

Requests run one at a time (a queue with concurrency 1); uploads are bounded (uploads.py); outputs are
written under a temporary folder with names of our own.
"""
import functools
import logging
import os
import tempfile
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home
import gradio as gr  # noqa: E402

from ..diffusion import SAMPLERS  # noqa: E402
from ..utils import VidiffError  # noqa: E402
from . import animate, generate, uploads, video_ops  # noqa: E402

log = logging.getLogger("vidiff.ui")
TITLE = "vidiff"
DEFAULT_MODEL = "shapes-tiny"
MAX_DRAG = 64  # pixels of the photo
# the heavy handlers share one slot of the queue: one computation at a time across all users and tabs
ONE_AT_A_TIME = {"concurrency_limit": 1, "concurrency_id": "compute"}


def one_line_errors(fn):
    """Run a handler; a VidiffError becomes its one line in the page, anything else a short line (the
    traceback goes to the server's log only)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except VidiffError as e:
            raise gr.Error(str(e).splitlines()[0] if str(e) else "invalid input", print_exception=False) from None
        except Exception as e:  # noqa: BLE001 - the page shows one line; the log keeps the traceback
            log.exception("request failed")
            raise gr.Error(f"internal error ({type(e).__name__}); the server log has the details",
                           print_exception=False) from None

    return wrapper


def photo_upload(**kwargs) -> gr.Image:
    """An image box whose upload reaches the handler as its path on the server, undecoded: the handler
    reads it by content (`uploads.read_photo`), so a bad file is answered by one line, not Gradio's
    decoder error. (An instance override: a Component subclass would make Gradio write a .pyi stub.)"""
    box = gr.Image(type="filepath", sources=["upload"], **kwargs)
    box.preprocess = lambda payload: None if payload is None else payload.path
    return box


class App:
    """The page's state shared by all sessions: the models on offer and the output folder."""

    def __init__(self, runs_dir: str | Path | None = "runs", out_root: str | Path | None = None):
        self.runs_dir = runs_dir
        self.out_root = Path(out_root) if out_root else Path(tempfile.mkdtemp(prefix="vidiff-ui-"))
        self.out_root.mkdir(parents=True, exist_ok=True)
        self.models = generate.model_choices(runs_dir)
        self.uncond = video_ops.unconditional_choices(runs_dir)
        self.sr = video_ops.sr_choices()

    def out_dir(self) -> Path:
        """A fresh folder for one request's files."""
        return Path(tempfile.mkdtemp(dir=self.out_root))

    # --- Generate ---------------------------------------------------------------------------------

    def model_controls(self, label):
        want = generate.model_inputs(generate.pipeline_for(label, self.models))
        info = f"{want.frames} frames of {want.size}x{want.size} at {want.fps:g} fps"
        return (gr.update(visible=want.prompt), gr.update(visible=want.class_id, maximum=max(1, want.num_classes - 1)),
                gr.update(visible=want.image), gr.update(visible=want.guidance),
                gr.update(visible=want.autoguidance is not None, value=want.autoguidance or 0.0), info)

    def generate(self, label, prompt, class_id, image, sampler, steps, seed, guidance, autoguidance, num,
                 progress=gr.Progress(track_tqdm=True)):
        pipe = generate.pipeline_for(label, self.models)
        want = generate.model_inputs(pipe)
        photo = uploads.read_photo(image, max_side=512) if want.image else None
        res = generate.generate(pipe, self.out_dir(), prompt=prompt, class_id=class_id, image=photo,
                                sampler=sampler, steps=steps, seed=seed, guidance=guidance,
                                autoguidance=autoguidance if want.autoguidance is not None else None, num=num)
        return str(res.mp4), [str(res.mp4), str(res.gif)], res.summary

    # --- Animate a photo --------------------------------------------------------------------------

    def load_photo(self, path):
        if path is None:
            return None, None, {"start": None, "end": None}, None
        photo = uploads.read_photo(path, max_side=animate.PHOTO_SIDE)
        return photo, None, {"start": None, "end": None}, animate.draw_poke(photo, None, None)

    def _motion(self, photo, cache, seed, steps):
        if photo is None:
            raise VidiffError("no photo uploaded; drop a photo on the photo box first")
        key = (int(seed), int(steps), photo.shape)
        if cache is None or cache["key"] != key:
            cache = {"key": key, "motion": animate.photo_motion(photo, seed=seed, steps=steps)}
        return cache

    def animate(self, photo, cache, seed, steps, frames, loop, slowmo, magnify, progress=gr.Progress(track_tqdm=True)):
        cache = self._motion(photo, cache, seed, steps)
        clip = animate.animate_photo(photo, cache["motion"], self.out_dir(), frames=frames, loop=loop, slowmo=slowmo,
                                     magnify=magnify)
        return str(clip.mp4), str(clip.xt), clip.summary, cache

    def click(self, photo, poke, evt: gr.SelectData):
        if photo is None:
            raise VidiffError("no photo uploaded; drop a photo on the photo box first")
        s = animate.display_scale(photo)  # the canvas shows the photo upscaled
        x = min(max(evt.index[0] // s, 0), photo.shape[1] - 1)
        y = min(max(evt.index[1] // s, 0), photo.shape[0] - 1)
        poke = animate.click(poke, x, y)
        (x0, y0), end = poke["start"], poke["end"]
        dx, dy = (end[0] - x0, end[1] - y0) if end is not None else (0.0, 0.0)
        dx, dy = (min(max(d, -MAX_DRAG), MAX_DRAG) for d in (dx, dy))
        return poke, animate.draw_poke(photo, poke["start"], end), x0, y0, dx, dy

    def poke(self, photo, cache, seed, steps, x, y, dx, dy, frames, damping, progress=gr.Progress(track_tqdm=True)):
        cache = self._motion(photo, cache, seed, steps)
        clip = animate.poke_photo(photo, cache["motion"], self.out_dir(), x=x, y=y, dx=dx, dy=dy, frames=frames,
                                  damping=damping)
        return str(clip.mp4), str(clip.xt), clip.summary, cache

    def poke_after_click(self, photo, cache, poke, seed, steps, x, y, dx, dy, frames, damping,
                         progress=gr.Progress(track_tqdm=True)):
        """The second click of a drag plays the response at once; the first only marks the point."""
        if poke.get("end") is None:
            return gr.skip(), gr.skip(), "click a second point: the drag goes from the first point to it", cache
        return self.poke(photo, cache, seed, steps, x, y, dx, dy, frames, damping)

    # --- Extend / interpolate / upsample ----------------------------------------------------------

    def video_op(self, path, operation, label, frames, factor, steps, seed, progress=gr.Progress(track_tqdm=True)):
        video, fps = uploads.read_video(path)
        if operation in ("extend", "interpolate"):
            pipe = generate.pipeline_for(label, self.uncond)
        else:
            kind = "tsr" if "time" in operation else "ssr"
            if kind not in self.sr:
                raise VidiffError(f"no {kind.upper()} model is installed; train one with scripts/train_cascade.sh")
            pipe = generate.load(self.sr[kind])
        res = video_ops.run_operation(operation, video, fps, pipe, self.out_dir(), frames=frames, factor=factor,
                                      steps=steps, seed=seed)
        return str(res.mp4), res.summary


def build_app(runs_dir: str | Path | None = "runs", out_root: str | Path | None = None) -> gr.Blocks:
    """The Blocks of `vidiff ui`; `runs_dir`: where checkpoint folders are offered from."""
    app = App(runs_dir, out_root)
    h = {name: one_line_errors(getattr(app, name)) for name in
         ("model_controls", "generate", "load_photo", "animate", "click", "poke", "poke_after_click", "video_op")}
    labels = list(app.models)
    default = DEFAULT_MODEL if DEFAULT_MODEL in labels else (labels[0] if labels else None)
    with gr.Blocks(title=TITLE, delete_cache=(3600, 3600)) as demo:
        gr.Markdown("# vidiff\nVideo diffusion on your machine: generate, animate a photo and poke it, "
                    "extend / interpolate / upsample a video. One request runs at a time.")
        with gr.Tab("Generate", elem_id="tab-generate"):
            with gr.Row():
                with gr.Column():
                    model = gr.Dropdown(labels, value=default, label="model",
                                        elem_id="gen-model")
                    model_info = gr.Markdown()
                    prompt = gr.Textbox(label="prompt", visible=False, elem_id="gen-prompt")
                    class_id = gr.Slider(0, 1, value=0, step=1, label="class", visible=False)
                    first = photo_upload(label="first frame", visible=False,
                                     elem_id="gen-image")
                    with gr.Row():
                        sampler = gr.Dropdown(list(SAMPLERS), value="ddpm", label="sampler")
                        steps = gr.Slider(1, generate.MAX_STEPS, value=50, step=1, label="steps", elem_id="gen-steps")
                    with gr.Row():
                        seed = gr.Number(0, precision=0, label="seed", elem_id="gen-seed")
                        num = gr.Slider(1, generate.MAX_NUM, value=1, step=1, label="videos")
                    guidance = gr.Slider(0, 10, value=0, step=0.5, label="guidance (classifier-free)", visible=False)
                    autoguidance = gr.Slider(0, 5, value=0, step=0.1, label="autoguidance", visible=False)
                    run = gr.Button("Generate", variant="primary", elem_id="gen-run")
                with gr.Column():
                    video = gr.Video(label="video", autoplay=True, loop=True, elem_id="gen-video")
                    files = gr.File(label="downloads (MP4, GIF)", file_count="multiple", elem_id="gen-files")
                    summary = gr.Markdown(elem_id="gen-summary")
            controls = [prompt, class_id, first, guidance, autoguidance, model_info]
            model.change(h["model_controls"], model, controls, queue=False)
            demo.load(h["model_controls"], model, controls, queue=False)
            run.click(h["generate"], [model, prompt, class_id, first, sampler, steps, seed, guidance, autoguidance,
                                      num],
                      [video, files, summary], **ONE_AT_A_TIME)

        with gr.Tab("Animate a photo", elem_id="tab-animate"):
            photo_state, motion_state, poke_state = gr.State(None), gr.State(None), gr.State({"start": None,
                    "end": None})
            with gr.Row():
                with gr.Column():
                    photo = photo_upload(label="photo", height=280,
                                     elem_id="anim-photo")
                    with gr.Row():
                        a_seed = gr.Number(0, precision=0, label="seed")
                        a_steps = gr.Slider(1, 50, value=25, step=1, label="motion steps", elem_id="anim-steps")
                    a_frames = gr.Slider(8, animate.MAX_FRAMES, value=90, step=1, label="frames", elem_id="anim-frames")
                    loop = gr.Checkbox(True, label="loop")
                    slowmo = gr.Slider(1, 8, value=1, step=0.5, label="slow motion")
                    magnify = gr.Slider(0.5, 10, value=1, step=0.5, label="magnification")
                    a_run = gr.Button("Animate", variant="primary", elem_id="anim-run")
                with gr.Column():
                    a_video = gr.Video(label="animation", autoplay=True, loop=True, height=360, elem_id="anim-video")
                    a_xt = gr.Image(label="X-t slice (middle row over time, top to bottom)", interactive=False)
                    a_summary = gr.Markdown()
            gr.Markdown("### Poke\nClick a point on the photo, then a second point: the drag between them is the "
                        "impulse, and the scene's modal response plays. Or set the numbers and press Poke.")
            with gr.Row():
                with gr.Column():
                    canvas = gr.Image(label="click to poke", interactive=False, height=280, elem_id="poke-canvas")
                    with gr.Row():
                        px = gr.Number(0, label="x (px)", elem_id="poke-x")
                        py = gr.Number(0, label="y (px)", elem_id="poke-y")
                    dx = gr.Slider(-MAX_DRAG, MAX_DRAG, value=0, step=0.5, label="drag dx (px)", elem_id="poke-dx")
                    dy = gr.Slider(-MAX_DRAG, MAX_DRAG, value=0, step=0.5, label="drag dy (px)", elem_id="poke-dy")
                    with gr.Row():
                        p_frames = gr.Slider(8, animate.MAX_FRAMES, value=90, step=1, label="frames",
                                             elem_id="poke-frames")
                        damping = gr.Slider(0.0, 0.5, value=0.05, step=0.01, label="damping")
                    p_run = gr.Button("Poke", elem_id="poke-run")
                with gr.Column():
                    p_video = gr.Video(label="response", autoplay=True, height=360, elem_id="poke-video")
                    p_xt = gr.Image(label="X-t slice (poked row over time)", interactive=False)
                    p_summary = gr.Markdown(elem_id="poke-summary")
            photo.change(h["load_photo"], photo, [photo_state, motion_state, poke_state, canvas])
            a_run.click(h["animate"], [photo_state, motion_state, a_seed, a_steps, a_frames, loop, slowmo, magnify],
                        [a_video, a_xt, a_summary, motion_state], **ONE_AT_A_TIME)
            poke_in = [photo_state, motion_state, a_seed, a_steps, px, py, dx, dy, p_frames, damping]
            canvas.select(h["click"], [photo_state, poke_state], [poke_state, canvas, px, py, dx, dy]).success(
                h["poke_after_click"], [photo_state, motion_state, poke_state, *poke_in[2:]],
                [p_video, p_xt, p_summary, motion_state], **ONE_AT_A_TIME)
            p_run.click(h["poke"], poke_in, [p_video, p_xt, p_summary, motion_state], **ONE_AT_A_TIME)

        with gr.Tab("Extend / interpolate / upsample", elem_id="tab-video"):
            uncond = list(app.uncond)
            with gr.Row():
                with gr.Column():
                    upload = gr.File(label=f"video (at most {uploads.MAX_VIDEO_FRAMES} frames, "
                                     f"{uploads.MAX_UPLOAD_MB} MB)", elem_id="op-upload")
                    op = gr.Radio(list(video_ops.OPERATIONS), value="extend", label="operation")
                    op_model = gr.Dropdown(uncond, value=uncond[0] if uncond else None,
                                           label="model (extend, interpolate)")
                    with gr.Row():
                        op_frames = gr.Slider(2, video_ops.MAX_OUTPUT_FRAMES, value=32, step=1,
                                              label="total frames (extend)", elem_id="op-frames")
                        factor = gr.Slider(2, 8, value=2, step=1, label="factor (interpolate)")
                    with gr.Row():
                        op_steps = gr.Slider(1, generate.MAX_STEPS, value=25, step=1, label="steps", elem_id="op-steps")
                        op_seed = gr.Number(0, precision=0, label="seed")
                    op_run = gr.Button("Run", variant="primary", elem_id="op-run")
                with gr.Column():
                    op_video = gr.Video(label="result", autoplay=True, loop=True, height=360, elem_id="op-video")
                    op_summary = gr.Markdown(elem_id="op-summary")
            op_run.click(h["video_op"], [upload, op, op_model, op_frames, factor, op_steps, op_seed],
                         [op_video, op_summary], **ONE_AT_A_TIME)
    demo.queue(default_concurrency_limit=1, max_size=16)
    return demo


def launch(host: str = "127.0.0.1", port: int = 7860, share: bool = False, runs_dir: str | Path | None = "runs",
           block: bool = True) -> gr.Blocks:
    """Build and serve the app; `block=False` returns once it listens (tests)."""
    demo = build_app(runs_dir)
    demo.launch(server_name=host, server_port=port, share=share, max_file_size=f"{uploads.MAX_UPLOAD_MB}mb",
                show_error=True, prevent_thread_lock=not block, inbrowser=False, quiet=not block)
    return demo
