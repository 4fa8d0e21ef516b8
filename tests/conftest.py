"""Shared test setup: deterministic, thread-limited torch; a tiny video fixture."""
import os

import numpy as np
import pytest

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as `import vidiff` does, before torch loads OpenMP
import torch  # noqa: E402

torch.set_num_threads(int(os.environ.get("VIDIFF_TEST_THREADS", "2")))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    np.random.seed(0)
    yield
