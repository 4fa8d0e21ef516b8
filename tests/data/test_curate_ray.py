"""Ray Data (local mode, 2 workers) and the serial engine write the same manifest."""
import json

import pytest

from vidiff.data import curate as C

from .test_curate import CFG, FILTERS, _raw

pytest.importorskip("ray")


@pytest.mark.slow  # Ray's local start-up: ~15 s on an idle 2-core machine
def test_ray_and_process_pool_agree(tmp_path):
    import ray

    raw = _raw(tmp_path)
    out = {}
    for engine, workers in (("ray", 2), ("process", 1)):
        C.curate(raw, tmp_path / engine, CFG, FILTERS, workers=workers, engine=engine, shard_size=2, progress=False)
        out[engine] = json.loads((tmp_path / engine / C.MANIFEST).read_text())
    ray.shutdown()
    assert out["ray"]["engine"] == "ray" and out["process"]["engine"] == "process"
    for k in ("clips", "counts", "sources"):
        assert out["ray"][k] == out["process"][k], k
    assert out["ray"]["counts"]["kept"] == 3
