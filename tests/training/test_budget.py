"""The training budget check shared by `vidiff train` and `vidiff vae train`."""
import pytest

from vidiff.training.diffusion_task import TrainConfig, check_config
from vidiff.training.loop import check_budget
from vidiff.training.vae_task import VAETrainConfig, check_vae_config
from vidiff.utils import VidiffError


@pytest.mark.parametrize("steps, minutes, words", [(None, None, "give a training budget"),
                                                   (0, None, "--steps must be at least 1"),
                                                   (None, 0.0, "--minutes must be > 0"),
                                                   (None, -1.0, "--minutes must be > 0")])
def test_bad_budgets_are_one_line(steps, minutes, words):
    with pytest.raises(VidiffError, match=words):
        check_budget(steps, minutes)
    for check, cfg in ((check_config, TrainConfig(data="x")), (check_vae_config, VAETrainConfig(data="x"))):
        with pytest.raises(VidiffError, match=words):
            check(type(cfg)(data="x", steps=steps, minutes=minutes))


def test_a_budget_in_steps_or_minutes_passes():
    check_budget(10, None)
    check_budget(None, 0.5)
    check_budget(10, 0.5)
