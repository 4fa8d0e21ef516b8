"""Copy a run's sampling checkpoint (EMA weights + config, no optimizer state) into a model folder.

    python scripts/export_model.py runs/shapes-tiny src/vidiff/weights/shapes-tiny \\
        [--guide runs/shapes-tiny/snapshots/step_0001500 --autoguidance 1.0]

`--guide` also ships an earlier snapshot of the run as the weaker model of autoguidance (Karras et al.
2024): it goes into DEST/guide and the config records its default weight. A guide whose backbone
lacks a condition the run gained (an unconditional snapshot guiding a first-frame or text fine-tune
of it) is widened into the run's architecture with zero weights for the new input channels and zero
text layers (cross-attention, pooled projection), so it ignores the condition.
"""
import argparse
import json
import sys
from pathlib import Path

import torch

from vidiff.checkpoint import CONFIG_NAME, WEIGHTS_NAME, load_state_dict, read_config, save_state_dict
from vidiff.utils import VidiffError, atomic_write_text


def write_checkpoint(dest: Path, state: dict, config: dict) -> tuple[dict, float]:
    """Write weights + config into `dest` (each atomically); return the config and the weight file's size in MiB."""
    dest.mkdir(parents=True, exist_ok=True)
    save_state_dict(dest / WEIGHTS_NAME, state)
    atomic_write_text(dest / CONFIG_NAME, json.dumps(config, indent=2, sort_keys=True) + "\n")
    return config, (dest / WEIGHTS_NAME).stat().st_size / 2**20


def copy_checkpoint(src: Path, dest: Path, extra: dict | None = None) -> tuple[dict, float]:
    """Copy weights + config (plus `extra` config keys); return the config written and the weight
    file's size in MiB."""
    return write_checkpoint(dest, load_state_dict(src / WEIGHTS_NAME), {**read_config(src), **(extra or {})})


# The layers a text condition adds to a backbone. Each feeds the residual stream or the time
# embedding through a linear map (cross-attention's to_out, pooled_proj), so all-zero copies add nothing.
TEXT_LAYERS = (".cross.", "pooled_proj.", "null_cond.")


def copy_guide(src: Path, dest: Path, run: Path) -> tuple[dict, float]:
    """Copy guide checkpoint `src` into `dest` in the architecture of `run`: as is when the two backbone
    configs agree; when the run only gained a condition (input channels, text), every tensor widened
    with zero weights for the extra input channels (`widen_input_channels`) and zero text layers;
    any other difference is a one-line error."""
    model = read_config(run)["model"]
    config = read_config(src)
    if config["model"] == model:
        return copy_checkpoint(src, dest)
    from vidiff.train import widen_input_channels

    differ = {k for k in set(model) | set(config["model"]) if model.get(k) != config["model"].get(k)}
    gained = differ <= {"cond_channels", "text_dim"} and all(
        (config["model"].get(k) or 0) < (model.get(k) or 0) for k in differ)
    own, state = load_state_dict(run / WEIGHTS_NAME), load_state_dict(src / WEIGHTS_NAME)
    if not gained or set(state) - set(own):
        raise VidiffError(f"guide {src} is another backbone than {run} ({', '.join(sorted(differ))} differ); "
                          "give a snapshot of the same backbone (it may lack input channels or text layers)")
    out = {}
    for k, own_v in own.items():
        if k not in state:
            if k.startswith("noise_aug_embed."):  # the noise-level embedding a concat condition adds: used
                out[k] = own_v  # only by SSR's noise augmentation, so the run's own copy (never read here)
            elif any(p in "." + k for p in TEXT_LAYERS):
                out[k] = torch.zeros_like(own_v)
            else:
                raise VidiffError(f"guide {src} lacks {k}; give a snapshot of the same backbone")
            continue
        out[k] = state[k] if state[k].shape == own_v.shape else widen_input_channels(state[k], own_v)
        if out[k] is None:
            raise VidiffError(f"guide {src}: {k} has shape {tuple(state[k].shape)}, the run's {tuple(own_v.shape)}; "
                              "only added input channels can be widened")
    return write_checkpoint(dest, out, {**config, "model": model, "widened_from": config["model"]})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("dest")
    ap.add_argument("--guide", help="checkpoint folder of the weaker guide model (an earlier snapshot)")
    ap.add_argument("--autoguidance", type=float, default=1.0, help="default autoguidance weight w")
    ap.add_argument("--autoguidance-high-noise", type=float, default=None,
                    help="default weight where log-SNR < --logsnr-split (the noisier steps); default: w")
    ap.add_argument("--logsnr-split", type=float, default=0.0, help="log-SNR below which the high-noise weight applies")
    args = ap.parse_args()
    run_dir, dest_dir = Path(args.run), Path(args.dest)
    extra = None
    if args.guide:
        gconfig, gsize = copy_guide(Path(args.guide), dest_dir / "guide", run_dir)
        step = gconfig.get("summary", {}).get("steps")
        extra = {"autoguidance": {"guide": "guide", "w": args.autoguidance, "guide_steps": step}}
        if args.autoguidance_high_noise is not None:
            extra["autoguidance"].update(w_high_noise=args.autoguidance_high_noise, logsnr_split=args.logsnr_split)
        print(f"exported guide {args.guide} -> {dest_dir / 'guide'} ({gsize:.1f} MiB)")
    _, size = copy_checkpoint(run_dir, dest_dir, extra)
    print(f"exported {run_dir} -> {dest_dir} ({size:.1f} MiB)")


if __name__ == "__main__":
    try:
        main()
    except VidiffError as e:  # one line, not a traceback
        sys.exit(f"error: {e}")
