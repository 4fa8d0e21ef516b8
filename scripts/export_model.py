"""Copy a run's sampling checkpoint (EMA weights + config, no optimizer state) into a model folder.

    python scripts/export_model.py runs/shapes-tiny src/vidiff/weights/shapes-tiny \\
        [--guide runs/shapes-tiny/snapshots/step_0001500 --autoguidance 1.0]

`--guide` also ships an earlier snapshot of the run as the weaker model of autoguidance (Karras et al.
2024): it goes into DEST/guide and the config records its default weight.
"""
import argparse
import json
from pathlib import Path

from vidiff.checkpoint import CONFIG_NAME, WEIGHTS_NAME, load_state_dict, read_config, save_state_dict
from vidiff.utils import atomic_write_text


def copy_checkpoint(src: Path, dest: Path, extra: dict | None = None) -> tuple[dict, float]:
    """Copy weights + config (plus `extra` config keys); return the config written and the weight
    file's size in MiB."""
    config = {**read_config(src), **(extra or {})}
    dest.mkdir(parents=True, exist_ok=True)
    save_state_dict(dest / WEIGHTS_NAME, load_state_dict(src / WEIGHTS_NAME))
    atomic_write_text(dest / CONFIG_NAME, json.dumps(config, indent=2, sort_keys=True) + "\n")
    return config, (dest / WEIGHTS_NAME).stat().st_size / 2**20


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
        gconfig, gsize = copy_checkpoint(Path(args.guide), dest_dir / "guide")
        step = gconfig.get("summary", {}).get("steps")
        extra = {"autoguidance": {"guide": "guide", "w": args.autoguidance, "guide_steps": step}}
        if args.autoguidance_high_noise is not None:
            extra["autoguidance"].update(w_high_noise=args.autoguidance_high_noise, logsnr_split=args.logsnr_split)
        print(f"exported guide {args.guide} -> {dest_dir / 'guide'} ({gsize:.1f} MiB)")
    _, size = copy_checkpoint(run_dir, dest_dir, extra)
    print(f"exported {run_dir} -> {dest_dir} ({size:.1f} MiB)")


if __name__ == "__main__":
    main()
