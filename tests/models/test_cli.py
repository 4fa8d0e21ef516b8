"""`vidiff models` lists every preset; FLOPs scale as the analytic count of one conv predicts."""
import torch

from vidiff.cli import main
from vidiff.models.stats import preset_stats
from vidiff.models.presets import PRESETS


def test_models_command_lists_presets(capsys):
    assert main(["models", "--frames", "4", "--size", "16"]) == 0
    out = capsys.readouterr().out
    for name in PRESETS:
        assert name in out
    assert main(["models", "--frames", "0"]) == 2
    assert "--frames" in capsys.readouterr().err


def test_flops_scale_with_frames_and_batch():
    p, g4 = preset_stats("unet-tiny", 4, 16)
    _, g8 = preset_stats("unet-tiny", 8, 16)
    _, g4b2 = preset_stats("unet-tiny", 4, 16, batch=2)
    assert 1e6 < p < 4e6
    # everything but temporal attention is per frame: doubling F at most a bit more than doubles FLOPs
    assert 2.0 <= g8 / g4 < 2.2
    torch.testing.assert_close(g4b2, 2 * g4, rtol=1e-3, atol=0)
