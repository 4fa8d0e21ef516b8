"""LPIPS loader with stand-in VGG16 / linear-layer files; the distance against a per-layer hand computation."""
import pytest
import torch

from vidiff.metrics.lpips import LPIPS, load_lpips
from vidiff.utils import VidiffError


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    torch.manual_seed(0)
    model = LPIPS().eval()
    for lin in model.lins.values():
        lin.model[1].weight.data.uniform_(0, 0.1)  # LPIPS weights are non-negative
    d = tmp_path_factory.mktemp("lpips")
    sd = {f"features.{k}": v for k, v in model.features.state_dict().items()}
    sd["classifier.0.weight"] = torch.zeros(2, 2)  # a full torchvision vgg16 file also has a classifier
    torch.save(sd, d / "vgg16.pth")
    torch.save(model.lins.state_dict(), d / "vgg.pth")
    return model, d


def test_lin_file_layout():
    keys = dict(LPIPS().lins.state_dict())
    assert keys["lin0.model.1.weight"].shape == (1, 64, 1, 1) and keys["lin4.model.1.weight"].shape == (1, 512, 1, 1)


def test_round_trip_identity_and_symmetry(files):
    model, d = files
    fn = load_lpips(d / "vgg16.pth", d / "vgg.pth")
    a, b = torch.rand(2, 3, 2, 16, 16) * 2 - 1, torch.rand(2, 3, 2, 16, 16) * 2 - 1
    dab = fn(a, b)
    assert dab.shape == (2, 2) and (dab > 0).all()
    torch.testing.assert_close(dab, fn(b, a))
    torch.testing.assert_close(fn(a, a), torch.zeros(2, 2))
    with torch.no_grad():
        direct = model(a[:, :, 0], b[:, :, 0])
    torch.testing.assert_close(dab[:, 0], direct)


def test_matches_hand_computation_on_one_layer(files):
    model, _ = files
    m = LPIPS().eval()
    m.features.load_state_dict(model.features.state_dict())
    for i, lin in enumerate(m.lins.values()):
        lin.model[1].weight.data.fill_(1.0 if i == 0 else 0.0)
    x, y = torch.rand(1, 3, 16, 16) * 2 - 1, torch.rand(1, 3, 16, 16) * 2 - 1
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)
    with torch.no_grad():
        fx, fy = model.features[:4]((x - shift) / scale), model.features[:4]((y - shift) / scale)  # relu1_2
        nx, ny = fx / (fx.norm(dim=1, keepdim=True) + 1e-10), fy / (fy.norm(dim=1, keepdim=True) + 1e-10)
        expect = ((nx - ny) ** 2).sum(1).mean()
        assert m(x, y).item() == pytest.approx(expect.item(), rel=1e-5)


def test_wrong_files_refused(files, tmp_path):
    _, d = files
    with pytest.raises(VidiffError, match="accepted formats"):
        load_lpips(d / "vgg.pth", d / "vgg.pth")  # lin file given as backbone
    with pytest.raises(VidiffError, match="not found"):
        load_lpips(tmp_path / "none.pth", d / "vgg.pth")


def test_cli_lpips(files, tmp_path):
    import json

    import numpy as np

    from vidiff.cli import main

    _, d = files
    g = np.random.default_rng(0)
    np.save(tmp_path / "a.npy", g.integers(0, 256, (2, 3, 16, 16, 3), dtype=np.uint8))
    np.save(tmp_path / "b.npy", g.integers(0, 256, (2, 3, 16, 16, 3), dtype=np.uint8))
    base = ["eval", "--real", str(tmp_path / "a.npy"), "--fake", str(tmp_path / "b.npy"), "--metrics", "lpips",
            "--frames", "3"]
    assert main(base) == 2  # no weights given: refused, never downloaded
    assert main(base + ["--lpips-vgg", str(d / "vgg16.pth"), "--lpips-lin", str(d / "vgg.pth"),
                        "--out", str(tmp_path / "r.json")]) == 0
    s = json.loads((tmp_path / "r.json").read_text())["scores"]["lpips"]
    assert s["value"] > 0 and len(s["per_frame"]) == 3
