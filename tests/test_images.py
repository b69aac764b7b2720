"""Image I/O, modcrop, tensor conversion and the offline image set (srlearn.data.images)."""
from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from srlearn.data.images import (TEXTURE_KINDS, get_image, list_images, load_image, modcrop, save_image,
                                 texture, to_tensor, to_uint8)


@pytest.fixture
def rgb():
    return np.random.default_rng(0).integers(0, 256, size=(13, 17, 3), dtype=np.uint8)


# --------------------------------------------------------------------------- load_image


def test_load_rgb_png_roundtrip(tmp_path, rgb):
    Image.fromarray(rgb).save(tmp_path / "a.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")            # plain 8-bit RGB: no warning
        out = load_image(tmp_path / "a.png")
    assert out.dtype == np.uint8 and out.shape == (13, 17, 3)
    np.testing.assert_array_equal(out, rgb)


def test_load_gray_is_replicated(tmp_path, rgb):
    g = rgb[:, :, 0]
    Image.fromarray(g).save(tmp_path / "g.png")
    out = load_image(str(tmp_path / "g.png"))
    assert out.shape == (13, 17, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], g)
    Image.fromarray(g > 128).save(tmp_path / "b.png")            # 1-bit
    np.testing.assert_array_equal(load_image(tmp_path / "b.png")[:, :, 1], np.where(g > 128, 255, 0))


def test_load_alpha_dropped_with_warning(tmp_path, rgb):
    alpha = np.full(rgb.shape[:2] + (1,), 7, dtype=np.uint8)
    Image.fromarray(np.concatenate([rgb, alpha], axis=2)).save(tmp_path / "a.png")
    with pytest.warns(UserWarning, match="alpha"):
        out = load_image(tmp_path / "a.png")
    np.testing.assert_array_equal(out, rgb)
    Image.fromarray(np.stack([rgb[:, :, 0], alpha[:, :, 0]], axis=2)).save(tmp_path / "la.png")
    with pytest.warns(UserWarning, match="alpha"):
        out = load_image(tmp_path / "la.png")
    np.testing.assert_array_equal(out, np.repeat(rgb[:, :, :1], 3, axis=2))


def test_load_16_bit_scaled_and_rounded(tmp_path):
    v = np.arange(0, 65536, 7, dtype=np.uint16)[:64 * 64].reshape(64, 64)
    v[0, :4] = [0, 65535, 128, 385]              # 128*255/65535 = 0.498 -> 0; 385*255/65535 = 1.498 -> 1
    Image.fromarray(v).save(tmp_path / "d.png")
    assert Image.open(tmp_path / "d.png").mode.startswith("I")
    out = load_image(tmp_path / "d.png")
    expected = (2 * v.astype(np.int64) * 255 + 65535) // (2 * 65535)     # round half up, in integers
    np.testing.assert_array_equal(out[:, :, 0], expected)
    assert list(out[0, :4, 0]) == [0, 255, 0, 1]


def _png16_rgb(path, a):
    # Pillow cannot write 48-bit PNG: write the chunks by hand (PNG spec: IHDR, zlib IDAT, filter 0 rows)
    import struct
    import zlib

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))
    a = np.asarray(a, dtype=">u2")
    raw = b"".join(b"\x00" + row.tobytes() for row in a)
    ihdr = struct.pack(">IIBBBBB", a.shape[1], a.shape[0], 16, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw))
                     + chunk(b"IEND", b""))


def test_load_16_bit_colour_warns(tmp_path):
    a = np.array([[[0, 255, 256], [32767, 32895, 65535]]])
    _png16_rgb(tmp_path / "c16.png", a)
    with pytest.warns(UserWarning, match="16-bit colour"):
        out = load_image(tmp_path / "c16.png")
    np.testing.assert_array_equal(out, a // 256)


def test_load_palette(tmp_path, rgb):
    pal = Image.fromarray(rgb).quantize(colors=6)
    pal.save(tmp_path / "p.png")
    table = np.array(pal.getpalette(), dtype=np.uint8).reshape(-1, 3)
    expected = table[np.asarray(pal)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")            # no alpha in this palette: no warning
        out = load_image(tmp_path / "p.png")
    np.testing.assert_array_equal(out, expected)
    pal.info["transparency"] = 0
    pal.save(tmp_path / "pt.png", transparency=0)
    with pytest.warns(UserWarning, match="alpha"):
        np.testing.assert_array_equal(load_image(tmp_path / "pt.png"), expected)


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no image"):
        load_image(tmp_path / "missing.png")
    (tmp_path / "t.png").write_text("not an image")
    with pytest.raises(ValueError, match="not an image"):
        load_image(tmp_path / "t.png")
    Image.fromarray(np.zeros((4, 4), dtype=np.float32)).save(tmp_path / "f.tif")
    with pytest.raises(ValueError, match="unsupported image mode 'F'"):
        load_image(tmp_path / "f.tif")
    Image.new("CMYK", (4, 4)).save(tmp_path / "c.tif")
    with pytest.raises(ValueError, match="CMYK"):
        load_image(tmp_path / "c.tif")


# --------------------------------------------------------------------------- save_image


def test_save_image_roundtrip_and_atomic(tmp_path, rgb):
    p = tmp_path / "out.png"
    save_image(p, rgb)
    np.testing.assert_array_equal(np.asarray(Image.open(p)), rgb)
    save_image(str(p), rgb[:, :, 1])              # overwrite, grey
    np.testing.assert_array_equal(np.asarray(Image.open(p)), rgb[:, :, 1])
    assert sorted(os.listdir(tmp_path)) == ["out.png"]        # no temporary file left behind


def test_save_image_errors(tmp_path, rgb):
    with pytest.raises(TypeError, match="uint8"):
        save_image(tmp_path / "a.png", rgb.astype(np.float32))
    with pytest.raises(ValueError, match="HxWx3"):
        save_image(tmp_path / "a.png", np.zeros((4, 4, 4), np.uint8))
    with pytest.raises(ValueError, match=".png"):
        save_image(tmp_path / "a.jpg", rgb)
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------- modcrop


def test_modcrop_shapes_and_content(rgb):
    for s, shape in ((1, (13, 17)), (2, (12, 16)), (3, (12, 15)), (4, (12, 16)), (13, (13, 13))):
        out = modcrop(rgb, s)
        assert out.shape == shape + (3,)
        np.testing.assert_array_equal(out, rgb[:shape[0], :shape[1]])     # bottom/right removed
    assert modcrop(rgb[:, :, 0], 5).shape == (10, 15)
    assert modcrop(rgb, 2.0).shape == (12, 16, 3)


def test_modcrop_errors(rgb):
    with pytest.raises(ValueError, match="smaller than scale"):
        modcrop(rgb, 14)
    with pytest.raises(ValueError, match="integer"):
        modcrop(rgb, 2.5)
    with pytest.raises(ValueError, match=">= 1"):
        modcrop(rgb, 0)
    with pytest.raises(TypeError):
        modcrop(rgb, True)
    with pytest.raises(ValueError, match="HxW"):
        modcrop(np.zeros((2, 4, 4, 3), np.uint8), 2)


# --------------------------------------------------------------------------- tensors


def test_to_tensor_layouts(rgb):
    t = to_tensor(rgb)
    assert t.dtype == torch.float32 and t.shape == (3, 13, 17)
    np.testing.assert_array_equal(t.numpy(), rgb.transpose(2, 0, 1).astype(np.float32) / np.float32(255))
    assert to_tensor(rgb[:, :, 0]).shape == (1, 13, 17)
    batch = to_tensor([rgb, rgb[::-1]])
    assert batch.shape == (2, 3, 13, 17)
    np.testing.assert_array_equal(batch[1].numpy(), to_tensor(np.ascontiguousarray(rgb[::-1])).numpy())
    assert to_tensor(np.stack([rgb, rgb])).shape == (2, 3, 13, 17)
    with pytest.raises(TypeError, match="uint8"):
        to_tensor(rgb.astype(np.float32))
    with pytest.raises(ValueError, match="one shape"):
        to_tensor([rgb, rgb[:5]])


def test_to_uint8_roundtrip_and_layouts(rgb):
    levels = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)
    np.testing.assert_array_equal(to_uint8(to_tensor(levels)), levels)
    t = to_tensor(rgb)
    assert to_uint8(t).shape == (13, 17, 3)
    assert to_uint8(t[None]).shape == (13, 17, 3)
    assert to_uint8(torch.stack([t, t])).shape == (2, 13, 17, 3)
    with pytest.raises(ValueError, match="NaN"):
        to_uint8(torch.full((3, 2, 2), float("nan")))
    with pytest.raises(ValueError, match="CxHxW"):
        to_uint8(torch.zeros(2, 2))


def test_to_uint8_rounds_half_up_and_clamps():
    # values v (float64) whose v*255 is exactly k + 0.5 in binary: they must become k + 1 (half up)
    ties = [(k, (k + 0.5) / 255) for k in range(255) if ((k + 0.5) / 255) * 255 == k + 0.5]
    assert len(ties) > 100
    v = torch.tensor([t for _, t in ties], dtype=torch.float64).view(1, 1, -1)
    got = to_uint8(v)[0, :, 0]
    np.testing.assert_array_equal(got, [k + 1 for k, _ in ties])
    # torch.round is half-to-even, so it would disagree on even k
    assert any(int(torch.round(torch.tensor(t * 255))) == k for k, t in ties if k % 2 == 0)
    below = [(k, np.nextafter(t, 0)) for k, t in ties]
    below = [(k, b) for k, b in below if b * 255 < k + 0.5]     # just under the tie after the x255 too
    assert len(below) > 100
    got = to_uint8(torch.tensor([b for _, b in below], dtype=torch.float64).view(1, 1, -1))[0, :, 0]
    np.testing.assert_array_equal(got, [k for k, _ in below])
    clamp = torch.tensor([-0.3, -1e-9, 1.0 + 1e-9, 7.0], dtype=torch.float32).view(1, 1, -1)
    np.testing.assert_array_equal(to_uint8(clamp)[0, :, 0], [0, 0, 255, 255])


# --------------------------------------------------------------------------- image set


def test_list_images_splits():
    train, valid, everything = list_images("train"), list_images("valid"), list_images("all")
    assert train and valid
    assert not set(train) & set(valid)
    assert everything == train + valid and len(set(everything)) == len(everything)
    with pytest.raises(ValueError, match="split"):
        list_images("test")


def test_every_listed_image_loads_offline():
    for name in list_images("all"):
        img = get_image(name)
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3, name
        assert min(img.shape[:2]) >= 256, name
        assert img.std() > 5, name                 # not blank


def test_get_image_returns_fresh_copies_and_errors():
    a = get_image("texture:checker:0")
    a[:] = 0
    assert get_image("texture:checker:0").any()
    with pytest.raises(ValueError, match="unknown image"):
        get_image("lena")
    with pytest.raises(ValueError, match="texture:KIND:SEED"):
        get_image("texture:stripes")
    with pytest.raises(ValueError, match="unknown texture kind"):
        get_image("texture:plaid:0")
    with pytest.raises(TypeError):
        get_image(3)


@pytest.mark.parametrize("kind", TEXTURE_KINDS)
def test_textures_are_deterministic_and_seed_dependent(kind):
    a = texture(kind, size=64, seed=3)
    assert a.shape == (64, 64, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, texture(kind, size=64, seed=3))
    assert np.any(a != texture(kind, size=64, seed=4))
    assert a.std() > 10                              # has structure
    assert np.any(a != texture(TEXTURE_KINDS[(TEXTURE_KINDS.index(kind) + 1) % len(TEXTURE_KINDS)], 64, 3))


def test_texture_errors():
    with pytest.raises(ValueError, match="kind"):
        texture("plaid")
    with pytest.raises(ValueError, match="size"):
        texture("noise", size=8)
    with pytest.raises(ValueError, match="seed"):
        texture("noise", seed=-1)
