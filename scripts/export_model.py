"""Copy a run's sampling checkpoint (EMA weights + config, no optimizer state) into a model folder.

    python scripts/export_model.py runs/shapes-tiny src/vidiff/weights/shapes-tiny
"""
import json
import sys
from pathlib import Path

from vidiff.checkpoint import CONFIG_NAME, WEIGHTS_NAME, load_state_dict, read_config, save_state_dict
from vidiff.utils import atomic_write_text


def main(run: str, dest: str) -> None:
    run_dir, dest_dir = Path(run), Path(dest)
    config = read_config(run_dir)
    state = load_state_dict(run_dir / WEIGHTS_NAME)
    dest_dir.mkdir(parents=True, exist_ok=True)
    save_state_dict(dest_dir / WEIGHTS_NAME, state)
    atomic_write_text(dest_dir / CONFIG_NAME, json.dumps(config, indent=2, sort_keys=True) + "\n")
    size = (dest_dir / WEIGHTS_NAME).stat().st_size / 2**20
    print(f"exported {run_dir} -> {dest_dir} ({size:.1f} MiB)")


if __name__ == "__main__":
    main(*sys.argv[1:3])
