"""`vidiff train --data SHARDS`: WebDataset shards streamed epoch by epoch (every clip once per epoch across
ranks), an exact resume (weights bit-identical to an uninterrupted run), shard captions feeding text
conditioning, and a truncated or damaged shard refused with one line naming it."""
import json
import tarfile
from collections import Counter

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from vidiff.cli import main
from vidiff.data import io
from vidiff.data.curate import _add
from vidiff.data.shards import ShardClips, is_shard_data
from vidiff.train import TrainConfig, train
from vidiff.training import committed
from vidiff.training.data import EpochBatches
from vidiff.utils import VidiffError

TINY_MODEL = {"arch": "unet3d", "in_channels": 3, "out_channels": 3, "base_channels": 8, "channel_mults": [1, 2],
              "num_res_blocks": 1, "attention_levels": [], "head_dim": 8, "temporal": "conv"}
COUNTS = [3, 2, 2]  # 7 clips in 3 shards: with batch 2 the first epoch ends inside step 3


def _clip(i):
    """Clip i: a square moving right from column i, in a colour of its own (so content identifies it)."""
    v = np.zeros((6, 16, 16, 3), np.uint8)
    for f in range(6):
        v[f, 4:10, (i + f) % 10:(i + f) % 10 + 6] = [220, 30 * i, 60]
    return v


def _write_shards(root, counts=COUNTS, garbage=None):
    root.mkdir(parents=True, exist_ok=True)
    i = 0
    for s, n in enumerate(counts):
        with tarfile.open(root / f"{s:06d}.tar", "w") as tar:
            for _ in range(n):
                data = b"not a video" if i == garbage else io.write_mp4(root / "tmp.mp4", _clip(i), fps=4).read_bytes()
                _add(tar, f"c{i:04d}.mp4", data)
                _add(tar, f"c{i:04d}.json", json.dumps({"index": i, "caption": f"a square number {i}"}).encode())
                i += 1
    (root / "tmp.mp4").unlink(missing_ok=True)
    return root


@pytest.fixture(scope="module")
def shard_dir(tmp_path_factory):
    return _write_shards(tmp_path_factory.mktemp("shards") / "dataset")


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("cfg") / "tiny.json"
    p.write_text(json.dumps(TINY_MODEL))
    return p


def _keys(source, steps, rank=0):
    sampler = source._sampler(0, rank)
    return [b for b, _ in zip(sampler, range(steps))]


def test_every_clip_once_per_epoch_across_ranks_in_shard_order(shard_dir):
    clips = ShardClips(shard_dir, frames=4, size=16)
    assert is_shard_data(shard_dir) and is_shard_data(f"{shard_dir}/{{000000..000002}}.tar")
    assert not is_shard_data(shard_dir.parent) and len(clips) == 7 and clips.by_shard[1] == [3, 4]
    for world in (1, 2):
        src = EpochBatches(clips, 2, seed=5, world_size=world)
        # steps 0..20 on every rank: the stream positions interleave ranks batch by batch
        stream = {}
        for rank in range(world):
            for step, batch in enumerate(_keys(src, 21, rank)):
                for j, key in enumerate(batch):
                    stream[(step * world + rank) * 2 + j] = key
        keys = [stream[p] for p in sorted(stream)]
        assert len(keys) == 42 * world
        for e in range(len(keys) // 7):
            epoch = keys[7 * e:7 * e + 7]
            assert {k[0] for k in epoch} == {e} and Counter(i for _, i in epoch) == Counter(range(7)), (world, e)
            shards = [clips.records[i][0] for _, i in epoch]
            assert shards == sorted(shards, key=shards.index)  # shard by shard: each shard's clips together
    orders = [clips.epoch_order(5, e) for e in range(3)]
    assert orders[0] != orders[1] or orders[1] != orders[2]  # another order each epoch
    assert orders[0] == clips.epoch_order(5, 0)


def test_batches_resume_at_any_step_and_do_not_depend_on_workers(shard_dir):
    clips = ShardClips(shard_dir, frames=4, size=16, crop="random", seed=1)
    full = EpochBatches(clips, 3, seed=1).iterate(0)
    run = [next(full) for _ in range(4)]
    for start in (2, 3):  # inside the first epoch, and across its end
        again = EpochBatches(clips, 3, seed=1, num_workers=2).iterate(start)
        for want in run[start:]:
            got = next(again)
            assert got["index"].tolist() == want["index"].tolist()
            assert torch.equal(got["video"], want["video"]) and got["caption"] == want["caption"]
    item = run[0]
    i = int(item["index"][0])
    assert item["caption"][0] == f"a square number {i}" and item["video"].shape == (3, 3, 4, 16, 16)
    v = (item["video"][0] + 1) * 127.5  # (C, F, H, W) in [0, 255]
    green = float(v[1][v[0] > 110].mean())  # the square's green encodes the clip: the nearest is clip i
    assert min(range(7), key=lambda c: abs(green - 30 * c)) == i, green


def _cfg(data, model_file, out, **kw):
    base = dict(data=str(data), out=str(out), model=str(model_file), frames=4, size=16, batch=2, lr=1e-3,
                warmup=2, log_every=1, save_every=0, sample_every=0, num_samples=1)
    return TrainConfig(**{**base, **kw})


def test_resume_from_shards_equals_an_uninterrupted_run(shard_dir, model_file, tmp_path):
    full = train(_cfg(shard_dir, model_file, tmp_path / "full", steps=4))
    part = tmp_path / "part"
    train(_cfg(shard_dir, model_file, part, steps=2))  # stops inside the first epoch
    train(_cfg(f"{shard_dir}/{{000000..000002}}.tar", model_file, part, steps=4), resume=True)
    a, b = load_file(full / "model.safetensors"), load_file(part / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # bit-identical
    raw = [load_file(committed(run) / "model.safetensors") for run in (full, part)]
    assert all(torch.equal(raw[0][k], raw[1][k]) for k in raw[0])
    losses = [json.loads((committed(run) / "state.json").read_text())["losses"] for run in (full, part)]
    assert losses[0] == losses[1] and len(losses[0]) == 4


class RecordingEncoder:
    """A stand-in for MiniLM that records what it encodes (one hashed token per caption)."""

    def __init__(self):
        self.seen = []

    def encode(self, texts):
        from vidiff.conditioning.text import TEXT_DIM, TextEmbedding

        texts = [texts] if isinstance(texts, str) else list(texts)
        self.seen.append(texts)
        tok = torch.stack([torch.randn(1, TEXT_DIM, generator=torch.Generator().manual_seed(len(t)))
                           for t in texts])
        return TextEmbedding(tok, torch.ones(len(texts), 1, dtype=torch.bool), tok[:, 0])


def test_shard_captions_feed_text_conditioning(shard_dir, model_file, tmp_path, monkeypatch):
    enc = RecordingEncoder()
    monkeypatch.setattr("vidiff.training.diffusion_task.get_text_encoder", lambda: enc)
    out = train(_cfg(shard_dir, model_file, tmp_path / "text", steps=2, condition="text", cond_drop=0.0))
    assert enc.seen[0] == sorted(f"a square number {i}" for i in range(7))  # all captions, encoded once
    batches = [t for t in enc.seen[1:] if len(t) == 2]
    assert len(batches) == 2 and all(t.startswith("a square number ") for b in batches for t in b)
    assert json.loads((out / "config.json").read_text())["conditioning"]["condition"] == "text"


def test_truncated_or_damaged_shard_is_one_line_naming_it(tmp_path, model_file, capsys):
    bad = _write_shards(tmp_path / "cut", [2, 2])
    data = (bad / "000001.tar").read_bytes()
    (bad / "000001.tar").write_bytes(data[:len(data) // 2])
    with pytest.raises(VidiffError, match=r"shard .*000001\.tar is truncated"):
        ShardClips(bad)
    rc = main(["train", "--data", str(bad), "--model", str(model_file), "--frames", "4", "--size", "16",
               "--steps", "1", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "000001.tar is truncated" in err[0], err
    (bad / "000001.tar").write_bytes(data)
    last = tarfile.open(bad / "000001.tar").getmembers()[-1].offset
    (bad / "000001.tar").write_bytes(data[:last])  # cut where a member starts: a shorter tar without its end
    with pytest.raises(VidiffError, match=r"000001\.tar is truncated \(no end-of-archive marker\)"):
        ShardClips(bad)
    (bad / "000001.tar").write_bytes(b"\x00" * 100 + b"junk")
    with pytest.raises(VidiffError, match=r"shard .*000001\.tar is not a readable tar"):
        ShardClips(bad)
    # a clip that does not decode: found when it is read, also in a DataLoader worker
    broken = ShardClips(_write_shards(tmp_path / "garbage", [2, 2], garbage=2), frames=4, size=16)
    source = EpochBatches(broken, 4, num_workers=2)
    with pytest.raises(VidiffError) as e:
        source.at(0)
    msg = str(e.value)
    assert "\n" not in msg and "c0002" in msg and "000001.tar" in msg and msg.startswith("cannot read clip"), msg
