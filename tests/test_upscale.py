"""`srlearn upscale`: your own image, super-resolved, beside bicubic; tiles; errors."""
from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch

from srlearn.cli import main
from srlearn.data import imresize, load_image, save_image
from srlearn.models import build
from srlearn.train import save_checkpoint
from srlearn.upscale import (_tiles, bicubic_enlarge, load_upscaler, side_by_side, upscale_files, upscale_image,
                             upscale_tensor)


def _perturbed(name, preset, **kw):
    """A model whose every weight matters (untrained presets start near the identity or bicubic)."""
    torch.manual_seed(0)
    model = build(name, preset, **kw)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


@pytest.fixture
def edsr_ckpt(tmp_path):
    model = _perturbed("edsr", "mini")
    path = save_checkpoint(tmp_path / "edsr_x2.pt", model=model.state_dict(), model_spec=model.srlearn_spec)
    return path, model


@pytest.fixture
def photo(tmp_path):
    rng = np.random.default_rng(0)
    img = (np.clip(rng.normal(0, 1, (23, 31, 3)).cumsum(0).cumsum(1) * 4 + 128, 0, 255)).astype(np.uint8)
    path = tmp_path / "photo.png"
    save_image(path, img)
    return path, img


# ------------------------------------------------------------------ tiles

def test_tiles_cover_the_image_once_and_read_windows_are_bounded():
    for h, w, tile, ov, align in ((45, 53, 20, 12, 1), (7, 9, 20, 4, 1), (64, 33, 16, 5, 4)):
        cover = np.zeros((h, w), int)
        for (y0, y1, x0, x1), (ry0, ry1, rx0, rx1) in _tiles(h, w, tile, ov, align):
            cover[y0:y1, x0:x1] += 1
            assert y1 - y0 <= tile and x1 - x0 <= tile
            assert ry0 <= y0 and ry1 >= y1 and rx0 <= x0 and rx1 >= x1
            assert ry0 % align == 0 and rx0 % align == 0
            assert ry1 - ry0 <= tile + 2 * ov + align and rx1 - rx0 <= tile + 2 * ov + align
        assert (cover == 1).all()


@pytest.mark.parametrize("name,preset", [("edsr", "mini"), ("mirnet", "tiny"), ("rcan", "mini")])
def test_tiled_equals_untiled_within_one_grey_level(name, preset):
    model = _perturbed(name, preset)
    x = torch.rand(1, 3, 45, 53, generator=torch.Generator().manual_seed(1))
    full = upscale_tensor(model, x, model.scale).astype(int)
    tiled = upscale_tensor(model, x, model.scale, tile=20, overlap=16).astype(int)
    assert tiled.shape == full.shape == (45 * model.scale, 53 * model.scale, 3)
    assert np.abs(full - tiled).max() <= 1
    if name == "edsr":                          # local receptive field (about 12 LR pixels): exact
        assert np.abs(full - upscale_tensor(model, x, 2, tile=20, overlap=12)).max() == 0
    # the test can fail: without context the tile borders show
    assert np.abs(full - upscale_tensor(model, x, model.scale, tile=20, overlap=0)).max() > 1


def test_tiles_bound_the_size_the_model_sees(edsr_ckpt):
    _, model = edsr_ckpt
    seen = []
    model.register_forward_pre_hook(lambda m, args: seen.append(tuple(args[0].shape[-2:])))
    upscale_tensor(model, torch.rand(1, 3, 70, 90), 2, tile=24, overlap=8)
    assert len(seen) == 3 * 4 and max(max(s) for s in seen) <= 24 + 2 * 8


# ------------------------------------------------------------------ the function the notebook calls

def test_upscale_image_returns_sr_and_bicubic(edsr_ckpt, photo):
    path, model = edsr_ckpt
    _, img = photo
    res = upscale_image(str(path), img)
    assert res.sr.shape == res.bicubic.shape == (46, 62, 3) and res.sr.dtype == np.uint8
    assert res.lr is img
    with torch.no_grad():
        want = model(torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255)
    assert np.abs(res.sr.astype(int) - np.floor(want[0].clamp(0, 1).permute(1, 2, 0).numpy() * 255 + 0.5)).max() <= 1
    matlab = np.clip(np.floor(imresize(img, 2, mode="float") + 0.5), 0, 255)
    np.testing.assert_array_equal(res.bicubic, matlab)                # MATLAB bicubic of the same input
    again = upscale_image(model, img, 2)                              # a model works as well as a path
    np.testing.assert_array_equal(again.sr, res.sr)


def test_bicubic_enlarge_x1_is_the_image():
    img = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    np.testing.assert_array_equal(bicubic_enlarge(img, 1), img)


def test_side_by_side_layout():
    a, b = np.zeros((30, 40, 3), np.uint8), np.full((30, 40, 3), 200, np.uint8)
    pair = side_by_side(a, b, labels=None, gap=8)
    assert pair.shape == (30, 88, 3)
    assert (pair[:, :40] == 0).all() and (pair[:, 40:48] == 255).all() and (pair[:, 48:] == 200).all()
    labelled = side_by_side(a, b)
    assert (labelled[20:, 48:] == 200).all() and (labelled[:12, 48:80] != 200).any()   # a label drawn top-left
    with pytest.raises(ValueError, match="one shape"):
        side_by_side(a, b[:, :10])


# ------------------------------------------------------------------ scale and reference errors

def test_wrong_scale_is_a_clear_error(edsr_ckpt, photo):
    path, _ = edsr_ckpt
    with pytest.raises(ValueError, match=r"reference-free x2 network, but x4 was asked.*--scale 2"):
        upscale_image(str(path), photo[1], 4)
    mirnet = build("mirnet", "tiny").eval()
    with pytest.raises(ValueError, match=r"x1.*--scale 1 on an image you have already enlarged"):
        upscale_image(mirnet, photo[1], 2)


def test_reference_rules():
    img = np.random.default_rng(0).integers(0, 256, (16, 20, 3), dtype=np.uint8)
    ref = np.random.default_rng(1).integers(0, 256, (60, 88, 3), dtype=np.uint8)   # not 4x: cropped/padded
    ssen = _perturbed("ssen", "mini")
    with pytest.raises(ValueError, match="needs a reference"):
        upscale_image(ssen, img)
    res = upscale_image(ssen, img, reference=ref)
    assert res.sr.shape == (64, 80, 3)
    with pytest.raises(ValueError, match="takes none"):
        upscale_image(build("edsr", "mini").eval(), img, reference=ref)
    selfsim = _perturbed("ssen", "mini", self_similarity=True)
    assert upscale_image(selfsim, img).sr.shape == (64, 80, 3)
    with pytest.raises(ValueError, match="reference-based x4 network, but x2"):
        upscale_image(ssen, img, 2, reference=ref)


# ------------------------------------------------------------------ weights: checkpoint or EXPERIMENT/ARM

def test_experiment_arm_without_shipped_weights(monkeypatch):
    monkeypatch.setitem(sys.modules, "srlearn.weights", None)          # as if srlearn/weights.py were absent
    with pytest.raises(RuntimeError, match="shipped weights are not available.*checkpoint file"):
        load_upscaler("san-ablation/soca", "cpu")


def test_experiment_arm_uses_load_pretrained(monkeypatch):
    calls = []
    fake = types.ModuleType("srlearn.weights")
    fake.load_pretrained = lambda experiment, arm: calls.append((experiment, arm)) or build("edsr", "mini")
    monkeypatch.setitem(sys.modules, "srlearn.weights", fake)
    model = load_upscaler("sr-basics/edsr", "cpu")
    assert calls == [("sr-basics", "edsr")] and not model.training


def test_weights_argument_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_upscaler(str(tmp_path / "missing.pt"), "cpu")
    with pytest.raises(ValueError, match="neither a checkpoint file nor EXPERIMENT/ARM"):
        load_upscaler("a/b/c", "cpu")


# ------------------------------------------------------------------ the command

def test_upscale_command_writes_sr_and_side_by_side(tmp_path, edsr_ckpt, photo, capsys):
    path, _ = edsr_ckpt
    img_path, img = photo
    folder = tmp_path / "more"
    folder.mkdir()
    save_image(folder / "b.png", img[:10, :12])
    out = tmp_path / "out"
    assert main(["upscale", str(img_path), str(folder), "--weights", str(path), "--out", str(out),
                 "--tile", "8", "--overlap", "12", "--device", "cpu"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["b_x2.png", "b_x2_vs_bicubic.png", "photo_x2.png",
                                                     "photo_x2_vs_bicubic.png"]     # no temporary files left
    sr = load_image(out / "photo_x2.png")
    np.testing.assert_array_equal(sr, upscale_image(str(path), img).sr)               # tiled == untiled here
    pair = load_image(out / "photo_x2_vs_bicubic.png")
    assert pair.shape == (46, 2 * 62 + 8, 3)
    np.testing.assert_array_equal(pair[20:, 62 + 8:], sr[20:])
    printed = capsys.readouterr()
    assert "31x23 -> 62x46" in printed.out and "tiles" in printed.err                 # progress bar over tiles


def test_upscale_command_bad_inputs(tmp_path, edsr_ckpt, photo, capsys):
    path, _ = edsr_ckpt
    out = tmp_path / "out"
    args = ["--weights", str(path), "--out", str(out), "--no-progress"]
    assert main(["upscale", str(tmp_path / "nope.png")] + args) == 2
    assert "no image file" in capsys.readouterr().err
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    assert main(["upscale", str(text)] + args) == 2
    assert "not an image file Pillow can read" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SystemExit, match="no images"):
        main(["upscale", str(empty)] + args)
    assert main(["upscale", str(photo[0]), "--scale", "3"] + args) == 2
    assert "x2 network, but x3" in capsys.readouterr().err
    other = tmp_path / "sub"
    other.mkdir()
    save_image(other / "photo.png", photo[1])
    with pytest.raises(ValueError, match="share the name"):
        upscale_files([photo[0], other / "photo.png"], str(path), out)


def test_uploaded_bytes_and_weights_folder(tmp_path, edsr_ckpt, photo):
    path, model = edsr_ckpt
    img_path, img = photo
    res = upscale_image(model, img_path.read_bytes())                   # what an upload widget hands over
    np.testing.assert_array_equal(res.lr, img)
    with pytest.raises(ValueError, match="not an image file"):
        upscale_image(model, b"GIF89a but not really")
    with pytest.raises(ValueError, match="is a folder"):
        load_upscaler(str(tmp_path), "cpu")


def test_out_of_memory_suggests_tiles(tmp_path, edsr_ckpt, photo, monkeypatch):
    path, _ = edsr_ckpt

    def no_memory(self, x):
        raise RuntimeError("CUDA out of memory. Tried to allocate 3.00 GiB")

    monkeypatch.setattr(type(build("edsr", "mini")), "forward", no_memory)
    with pytest.raises(RuntimeError, match=r"photo.png: CUDA out of memory.*--tile 256"):
        upscale_files([photo[0]], str(path), tmp_path / "out", progress=False)
    assert not any((tmp_path / "out").iterdir())                        # nothing half-written
