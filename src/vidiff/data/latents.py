"""A latent cache: the clips of a video folder encoded once by an autoencoder, stored as safetensors shards.

Layout of a cache folder:
    index.json                 format, the autoencoder's fingerprint, scaling and shift factors, latent shape,
                               clip records (source path, captions, class id), shard list
    shard-00000.safetensors    "mean" (N, C, f, h, w) and "std" (N, C, f, h, w), float32, unscaled: the
                               posterior q(z|x) of N clips; the shard's clip ids and moment sums in its metadata

What is stored: the posterior mean and std (`store_std=True`, the default), so a trainer can draw
z = mean + std·ε afresh every step with its own step generator, as LDM samples q(z|x) while training;
with `store_std=False` only the mean is stored and trained on. The recorded `scaling_factor` is 1/std of what
training sees — z ~ q(z|x) (Var = Var(mean) + E[std²]) or the mean alone — over the whole cache (Stable
Diffusion's `scaling_factor`, LDM §4.3.2), measured while encoding.

Writing is resumable: each shard is written atomically (complete or absent) and carries its own clip ids and
moment sums, so an interrupted encode restarts by skipping the shards that exist; index.json is written last.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from safetensors import safe_open
from tqdm import tqdm

from ..checkpoint import save_state_dict
from ..utils import VidiffError, atomic_write_text, read_json
from .dataset import pick_caption

INDEX_NAME = "index.json"
FORMAT = "vidiff-latents"
VERSION = 1


def shard_name(k: int) -> str:
    return f"shard-{k:05d}.safetensors"


def _clip_records(dataset) -> list[dict]:
    """{"id", "captions", "class_id"} per clip of a `VideoDataset` (its relative paths, caption options, metadata)."""
    return [{"id": rel, "captions": list(caps), "class_id": int(meta.get("class_id", -1))}
            for rel, caps, meta in zip(dataset.rel_paths, dataset.caption_lists, dataset.meta)]


def _shard_info(path: Path) -> dict:
    try:
        with safe_open(str(path), framework="pt") as f:
            return json.loads((f.metadata() or {})["vidiff"])
    except Exception:  # noqa: BLE001 - unreadable file, missing or bad metadata
        raise VidiffError(f"{path} is not a vidiff latent shard; delete it and rerun the encode to rewrite it") \
            from None


def encode_latent_cache(dataset, autoencoder, out: str | Path, *, shard_size: int = 64, batch_size: int = 4,
                        chunk: int | None = None, tile: int | None = None, store_std: bool = True,
                        device: str | torch.device = "cpu", progress: bool = True) -> dict:
    """Encode every clip of `dataset` (a `VideoDataset`: one clip per video, as drawn for its current epoch) with
    `autoencoder` (a `vidiff.models.vae.Autoencoder` loaded by `load_autoencoder`, so it has a fingerprint) into
    shards of `shard_size` clips under `out`; returns the index written to `out/index.json`. Existing shards
    of the same autoencoder and clips are kept (resume)."""
    fingerprint = getattr(autoencoder, "fingerprint", None)
    if not fingerprint:
        raise VidiffError("the autoencoder has no fingerprint; load it with "
                          "vidiff.models.autoencoders.load_autoencoder")
    if shard_size < 1 or batch_size < 1:
        raise VidiffError(f"shard_size and batch_size must be >= 1, got {shard_size} and {batch_size}")
    out = Path(out)
    if (out / INDEX_NAME).is_file():
        old = read_latent_index(out)
        if old["autoencoder"]["fingerprint"] != fingerprint:
            raise VidiffError(f"{out} holds latents of another autoencoder (sha256 "
                              f"{old['autoencoder']['fingerprint'][:12]}…); write this one to a new folder")
    out.mkdir(parents=True, exist_ok=True)
    records = _clip_records(dataset)
    latent_shape = autoencoder.latent_shape(dataset.frames, dataset.size, dataset.size)
    count, total, total_sq = 0, 0.0, 0.0
    shards = []
    with tqdm(total=len(records), desc="encoding latents", unit="clip", disable=not progress) as bar:
        for k, start in enumerate(range(0, len(records), shard_size)):
            ids = [r["id"] for r in records[start:start + shard_size]]
            path = out / shard_name(k)
            if path.exists():
                info = _shard_info(path)
                if (info.get("fingerprint"), info.get("clips"), info.get("store_std")) != (fingerprint, ids, store_std):
                    raise VidiffError(f"{path} was written for other clips, another autoencoder or another store_std; "
                                      "write the cache to a new folder (or delete the old one)")
            else:
                info = _encode_shard(dataset, autoencoder, path, range(start, start + len(ids)), ids, batch_size,
                                     chunk, tile, store_std, fingerprint, device, latent_shape)
            count, total, total_sq = count + info["count"], total + info["sum"], total_sq + info["sum_sq"]
            shards.append({"file": path.name, "clips": len(ids)})
            bar.update(len(ids))
    mean = total / count
    std = math.sqrt(max(total_sq / count - mean * mean, 0.0))
    if not std > 0:
        raise VidiffError("the latents of the whole cache are constant (std 0); the autoencoder is broken")
    index = {
        "format": FORMAT, "version": VERSION,
        "autoencoder": {"fingerprint": fingerprint, "source": getattr(autoencoder, "source", None),
                        "spatial_factor": autoencoder.spatial_factor, "temporal_factor": autoencoder.temporal_factor,
                        "latent_channels": autoencoder.latent_channels,
                        "scaling_factor": autoencoder.scaling_factor, "shift_factor": autoencoder.shift_factor},
        "scaling_factor": 1.0 / std, "shift_factor": float(autoencoder.shift_factor),
        "latent_mean": mean, "latent_std": std, "store_std": store_std,
        "latent_shape": list(latent_shape), "frames": dataset.frames, "size": dataset.size,
        "stride": getattr(dataset, "stride", 1), "num_classes": int(getattr(dataset, "num_classes", 0)),
        "shard_size": shard_size, "shards": shards, "clips": records,
    }
    atomic_write_text(out / INDEX_NAME, json.dumps(index, indent=1) + "\n")
    return index


@torch.no_grad()
def _encode_shard(dataset, autoencoder, path: Path, indices: range, ids: list[str], batch_size: int,
                  chunk: int | None, tile: int | None, store_std: bool, fingerprint: str, device,
                  latent_shape: tuple[int, ...]) -> dict:
    """Encode the clips `indices` into one shard (written atomically); returns its info (clips, moment sums)."""
    means, stds = [], []
    for b in range(0, len(indices), batch_size):
        part = indices[b:b + batch_size]
        x = torch.stack([dataset[i]["video"] for i in part]).to(device)  # (n, 3, F, H, W)
        posterior = autoencoder.encode(x, chunk=chunk, tile=tile)
        mean, std = posterior.mean.float().cpu(), posterior.std.float().cpu()  # (n, C, f, h, w)
        bad = ~(torch.isfinite(mean).flatten(1).all(1) & torch.isfinite(std).flatten(1).all(1))
        if bad.any():
            raise VidiffError(f"the autoencoder gave NaN/inf latents for {ids[b + int(bad.nonzero()[0])]}; "
                              "check its weights (or the clip) before caching")
        means.append(mean)
        stds.append(std)
    mean, std = torch.cat(means), torch.cat(stds)
    if tuple(mean.shape[1:]) != tuple(latent_shape):
        raise VidiffError(f"the autoencoder gave latents of shape {tuple(mean.shape[1:])}, expected {latent_shape}")
    sum_sq = mean.double().pow(2).sum() + (std.double().pow(2).sum() if store_std else 0.0)
    info = {"fingerprint": fingerprint, "clips": ids, "store_std": store_std, "count": mean.numel(),
            "sum": float(mean.double().sum()), "sum_sq": float(sum_sq)}
    tensors = {"mean": mean, **({"std": std} if store_std else {})}
    save_state_dict(path, tensors, metadata={"vidiff": json.dumps(info)})
    return info


def read_latent_index(root: str | Path) -> dict:
    """`root/index.json` of a latent cache, checked for its format."""
    path = Path(root) / INDEX_NAME
    if not path.is_file():
        raise VidiffError(f"{root} is not a latent cache ({INDEX_NAME} is missing); write one with `vidiff vae encode`")
    index = read_json(path)
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        raise VidiffError(f"{path} is not a vidiff latent cache index (format {FORMAT!r})")
    if index.get("version") != VERSION:
        raise VidiffError(f"{path} has latent cache version {index.get('version')}; "
                          f"this vidiff reads version {VERSION}")
    return index


class LatentDataset(torch.utils.data.Dataset):
    """Items of a latent cache in `VideoDataset`'s shape: {"video": (C, f, h, w) scaled posterior mean
    (mean − shift)·scale, "latent_std": its std·scale (when stored; draw z = video + latent_std·ε per step),
    "caption", "class_id" (−1 if unknown), "index", "path" (the source clip)}.

    `scaling_factor` defaults to the one measured over the cache; pass the autoencoder's own (e.g. 0.18215 for
    Stable Diffusion's) to train in its convention. Non-finite latents are refused, naming the shard.
    """

    def __init__(self, root: str | Path, captions: str = "first", seed: int = 0, scaling_factor: float | None = None):
        if captions not in ("first", "random"):
            raise VidiffError(f"unknown captions setting {captions!r}; use 'first' or 'random'")
        self.root = Path(root)
        self.index = index = read_latent_index(self.root)
        self.captions, self.seed, self.epoch = captions, seed, 0
        self.scaling_factor = float(index["scaling_factor"] if scaling_factor is None else scaling_factor)
        self.shift_factor = float(index["shift_factor"])
        self.fingerprint = index["autoencoder"]["fingerprint"]
        self.latent_shape = tuple(index["latent_shape"])
        self.frames, self.size, self.num_classes = index["frames"], index["size"], index["num_classes"]
        self.records = index["clips"]
        self.rel_paths = [r["id"] for r in self.records]
        self.locations = [(s["file"], j) for s in index["shards"] for j in range(s["clips"])]
        if len(self.locations) != len(self.records):
            raise VidiffError(f"{self.root / INDEX_NAME}: the shards hold {len(self.locations)} clips but "
                              f"{len(self.records)} are listed; rerun `vidiff vae encode` on the same folder")

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        """Change the captions drawn (captions="random") for every index."""
        self.epoch = int(epoch)

    def all_captions(self) -> list[str]:
        """Every caption any item can be shown with, sorted."""
        options = self.records if self.captions == "random" else [{"captions": r["captions"][:1]} for r in self.records]
        return sorted({c for r in options for c in r["captions"]})

    def check_autoencoder(self, fingerprint: str) -> None:
        """VidiffError unless the cache was encoded by the autoencoder with this fingerprint."""
        if fingerprint != self.fingerprint:
            raise VidiffError(f"latent cache {self.root} was encoded by autoencoder sha256 {self.fingerprint[:12]}…, "
                              f"not {fingerprint[:12]}…; re-encode it or pass the autoencoder it was made with")

    def __getitem__(self, index: int) -> dict:
        file, j = self.locations[index]
        path = self.root / file
        if not path.is_file():
            raise VidiffError(f"latent shard {path} is missing; rerun `vidiff vae encode` with the same --out "
                              "to rewrite it")
        try:
            with safe_open(str(path), framework="pt") as f:
                mean = f.get_slice("mean")[j:j + 1][0]  # (C, f, h, w)
                std = f.get_slice("std")[j:j + 1][0] if "std" in f.keys() else None
        except Exception:  # noqa: BLE001 - truncated or foreign files
            raise VidiffError(f"cannot read latent shard {path}; delete it and rerun `vidiff vae encode`") from None
        record = self.records[index]
        if tuple(mean.shape) != self.latent_shape:
            raise VidiffError(f"{path}: clip {record['id']} has latents {tuple(mean.shape)}, "
                              f"the index says {self.latent_shape}")
        if not torch.isfinite(mean).all() or (std is not None and not torch.isfinite(std).all()):
            raise VidiffError(f"latent shard {path} holds NaN/inf latents (clip {record['id']}); delete it and rerun "
                              "`vidiff vae encode` with the same --out to re-encode it")
        options = record["captions"] if self.captions == "random" else record["captions"][:1]
        item = {"video": (mean.float() - self.shift_factor) * self.scaling_factor,
                "caption": pick_caption(options, self.seed, self.epoch, index),
                "class_id": int(record["class_id"]), "index": index, "path": record["id"]}
        if std is not None:
            item["latent_std"] = std.float() * self.scaling_factor
        return item


__all__ = ["INDEX_NAME", "LatentDataset", "encode_latent_cache", "read_latent_index", "shard_name"]
