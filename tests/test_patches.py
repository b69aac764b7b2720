"""Dihedral transforms, the BI degradation and aligned paired patches (srlearn.data.patches);
sr-protocol.md §8 items 4, 16, 17."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from srlearn.data.images import get_image, list_images, modcrop
from srlearn.data.patches import (PairedPatchDataset, dihedral, dihedral_inverse, make_lr, paired_crop,
                                  validation_pairs)
from srlearn.data.resize import imresize


@pytest.fixture
def img():
    return np.random.default_rng(0).integers(0, 256, size=(9, 9, 3), dtype=np.uint8)


def _random_image(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


# --------------------------------------------------------------------------- dihedral


def test_dihedral_convention(img):
    # EDSR/BasicSR: bit 0 hflip (W), bit 1 vflip (H), bit 2 transpose, applied in that order
    a = img
    expected = {
        0: a, 1: a[:, ::-1], 2: a[::-1], 3: a[::-1, ::-1],
        4: a.transpose(1, 0, 2),
        5: np.rot90(a, 1, axes=(0, 1)),            # hflip then transpose = rotate 90 degrees
        6: np.rot90(a, -1, axes=(0, 1)),           # vflip then transpose = rotate -90 degrees
        7: a[::-1, ::-1].transpose(1, 0, 2),       # anti-transpose
    }
    outs = [dihedral(a, k) for k in range(8)]
    for k in range(8):
        np.testing.assert_array_equal(outs[k], expected[k])
    assert len({o.tobytes() for o in outs}) == 8   # 8 different transforms of a generic image


def test_dihedral_inverse_numpy_and_torch(img):
    t3 = torch.from_numpy(img.transpose(2, 0, 1).copy())
    t4 = torch.rand(2, 3, 5, 7)
    for k in range(8):
        np.testing.assert_array_equal(dihedral_inverse(dihedral(img, k), k), img)
        np.testing.assert_array_equal(dihedral_inverse(dihedral(img[:, :, 0], k), k), img[:, :, 0])
        assert torch.equal(dihedral_inverse(dihedral(t3, k), k), t3)
        assert torch.equal(dihedral_inverse(dihedral(t4, k), k), t4)
        assert dihedral(t4, k).shape == ((2, 3, 7, 5) if k & 4 else (2, 3, 5, 7))
        # numpy HWC and torch CHW agree
        np.testing.assert_array_equal(dihedral(t3, k).numpy().transpose(1, 2, 0), dihedral(img, k))


def test_dihedral_errors(img):
    for k in (-1, 8, 1.5, True):
        with pytest.raises(ValueError, match="0..7"):
            dihedral(img, k)
    with pytest.raises(ValueError, match="HxW"):
        dihedral(np.zeros((2, 3, 4, 5)), 1)
    with pytest.raises(TypeError):
        dihedral([[1, 2]], 1)


# --------------------------------------------------------------------------- make_lr / crops


def test_make_lr_modcrops_and_degrades():
    hr0 = _random_image(50, 37)
    for s in (2, 3, 4):
        hr, lr = make_lr(hr0, s)
        h, w = 50 - 50 % s, 37 - 37 % s
        assert hr.shape == (h, w, 3) and lr.shape == (h // s, w // s, 3) and lr.dtype == np.uint8
        np.testing.assert_array_equal(hr, hr0[:h, :w])
        np.testing.assert_array_equal(lr, imresize(hr0[:h, :w], 1 / s, mode="uint8"))
        _, lr_f = make_lr(hr0, s, mode="float")
        once = np.clip(np.floor(imresize(hr0[:h, :w], 1 / s) + 0.5), 0, 255)
        np.testing.assert_array_equal(lr_f, once)
    with pytest.raises(TypeError, match="uint8"):
        make_lr(hr0.astype(np.float64), 2)
    with pytest.raises(ValueError, match="integer"):
        make_lr(hr0, 2.5)
    with pytest.raises(ValueError, match="mode"):
        make_lr(hr0, 2, mode="bicubic")


@pytest.mark.parametrize("s", [2, 3, 4])
def test_paired_crop_is_aligned_with_the_degradation(s):
    # §8.16: LR = float imresize(HR); the HR crop at s*(LR corner), resized, equals the LR crop exactly on
    # every pixel at least 2 LR px from the patch border (those taps stay inside the HR crop).
    rng = np.random.default_rng(s)
    hr = rng.random((24 * s, 30 * s, 3))
    lr = imresize(hr, 1 / s)
    p = 12
    for _ in range(4):
        top, left = rng.integers(0, 24 - p + 1), rng.integers(0, 30 - p + 1)
        lr_p, hr_p = paired_crop(lr, hr, top, left, p, s)
        assert lr_p.shape == (p, p, 3) and hr_p.shape == (p * s, p * s, 3)
        again = imresize(hr_p, 1 / s)
        np.testing.assert_array_equal(again[2:-2, 2:-2], lr_p[2:-2, 2:-2])
    # sensitivity: an HR crop shifted by one HR pixel is not aligned
    top, left = 5, 6
    lr_p, _ = paired_crop(lr, hr, top, left, p, s)
    shifted = hr[s * top + 1:s * (top + p) + 1, s * left:s * (left + p)]
    assert np.abs(imresize(shifted, 1 / s)[2:-2, 2:-2] - lr_p[2:-2, 2:-2]).max() > 1e-3


def test_paired_crop_errors():
    lr, hr = np.zeros((10, 10, 3)), np.zeros((21, 20, 3))
    with pytest.raises(ValueError, match="mod-crop"):
        paired_crop(lr, hr, 0, 0, 4, 2)
    with pytest.raises(ValueError, match="does not fit"):
        paired_crop(lr, hr[:20], 7, 0, 4, 2)


# --------------------------------------------------------------------------- dataset


def _images():
    return [_random_image(70, 90, 1), _random_image(61, 53, 2), _random_image(100, 64, 3)]


@pytest.mark.parametrize("s", [2, 3])
def test_dataset_items_are_aligned_and_identically_augmented(s):
    ds = PairedPatchDataset(_images(), scale=s, lr_patch=10, length=40, seed=1, quantize_lr=False)
    ks = set()
    for i in range(len(ds)):
        lr, hr = ds[i]
        assert lr.shape == (3, 10, 10) and hr.shape == (3, 10 * s, 10 * s)
        assert lr.dtype == hr.dtype == torch.float32
        assert 0 <= float(hr.min()) and float(hr.max()) <= 1
        # float imresize commutes with the dihedral transforms, so the pair stays a degradation pair
        # only if the crops are aligned AND the same transform was applied to both
        again = imresize(hr.numpy().astype(np.float64).transpose(1, 2, 0), 1 / s).transpose(2, 0, 1)
        np.testing.assert_allclose(again[:, 2:-2, 2:-2], lr.numpy()[:, 2:-2, 2:-2], rtol=0, atol=1e-6)
        ks.add(ds.crop_params(i)["k"])
    assert ks == set(range(8))


def test_dataset_item_matches_its_crop_params():
    images = _images()
    s, p = 2, 12
    ds = PairedPatchDataset(images, scale=s, lr_patch=p, length=30, seed=4)       # quantised float LR
    for i in range(30):
        c = ds.crop_params(i)
        hr_full, lr_full = make_lr(images[c["image"]], s, mode="float")
        t, l, k = c["top"], c["left"], c["k"]
        lr_exp = dihedral(lr_full[t:t + p, l:l + p], k).astype(np.float32) / 255
        hr_exp = dihedral(hr_full[s * t:s * (t + p), s * l:s * (l + p)], k).astype(np.float32) / 255
        lr, hr = ds[i]
        np.testing.assert_array_equal(lr.numpy().transpose(1, 2, 0), lr_exp)
        np.testing.assert_array_equal(hr.numpy().transpose(1, 2, 0), hr_exp)
        assert c["name"] == f"images[{c['image']}]"


def test_dataset_determinism():
    a = PairedPatchDataset(_images(), scale=2, lr_patch=8, length=50, seed=0)
    b = PairedPatchDataset(_images(), scale=2, lr_patch=8, length=50, seed=0)
    c = PairedPatchDataset(_images(), scale=2, lr_patch=8, length=50, seed=1)
    order = [7, 3, 49, 0, 3]                       # item i depends on (seed, i) only, not on access order
    first = {i: a[i] for i in order}
    for i in reversed(order):
        assert torch.equal(b[i][0], first[i][0]) and torch.equal(b[i][1], first[i][1])
    assert torch.equal(a[-1][1], a[49][1])
    diff = sum(not torch.equal(a[i][1], c[i][1]) for i in range(50))
    assert diff >= 45
    loader = torch.utils.data.DataLoader(a, batch_size=10, num_workers=0)
    lr_batch, hr_batch = next(iter(loader))
    assert lr_batch.shape == (10, 3, 8, 8) and torch.equal(hr_batch[3], a[3][1])


def test_dataset_no_augment_and_uniform_image_choice():
    ds = PairedPatchDataset(_images(), scale=2, lr_patch=8, length=3000, seed=2, augment=False)
    params = [ds.crop_params(i) for i in range(3000)]
    assert {c["k"] for c in params} == {0}
    counts = np.bincount([c["image"] for c in params], minlength=3)
    assert np.all(np.abs(counts - 1000) < 120)     # uniform over images, not by area (areas differ 2x)
    lr, hr = ds[0]
    c = params[0]
    hr_exp = modcrop(_images()[c["image"]], 2)[2 * c["top"]:2 * c["top"] + 16, 2 * c["left"]:2 * c["left"] + 16]
    np.testing.assert_array_equal(hr.numpy().transpose(1, 2, 0), hr_exp.astype(np.float32) / 255)


def test_dataset_uint8_lr_mode():
    images = _images()
    ds = PairedPatchDataset(images, scale=3, lr_patch=8, length=5, seed=0, lr_mode="uint8", augment=False)
    c = ds.crop_params(2)
    _, lr_full = make_lr(images[c["image"]], 3, mode="uint8")
    lr, _ = ds[2]
    exp = lr_full[c["top"]:c["top"] + 8, c["left"]:c["left"] + 8].astype(np.float32) / 255
    np.testing.assert_array_equal(lr.numpy().transpose(1, 2, 0), exp)


def test_dataset_accepts_names():
    ds = PairedPatchDataset(["texture:noise:0", "texture:glyphs:0"], scale=4, lr_patch=16, length=4)
    assert ds.names == ["texture:noise:0", "texture:glyphs:0"]
    lr, hr = ds[1]
    assert lr.shape == (3, 16, 16) and hr.shape == (3, 64, 64)


def test_dataset_errors():
    small = [_random_image(100, 100), _random_image(40, 120)]
    with pytest.raises(ValueError, match=r"images\[1\] \(40x120\) is too small"):
        PairedPatchDataset(small, scale=2, lr_patch=24)
    with pytest.raises(ValueError, match="texture:stripes:0"):
        PairedPatchDataset(["texture:stripes:0"], scale=4, lr_patch=80)
    with pytest.raises(ValueError, match="non-empty list"):
        PairedPatchDataset([], scale=2)
    with pytest.raises(TypeError, match="uint8"):
        PairedPatchDataset([np.zeros((64, 64, 3))], scale=2, lr_patch=8)
    with pytest.raises(ValueError, match="lr_mode"):
        PairedPatchDataset(small, scale=2, lr_patch=8, lr_mode="pil")
    ds = PairedPatchDataset(small, scale=2, lr_patch=8, length=5)
    with pytest.raises(IndexError):
        ds[5]
    assert len(list(ds)) == 5                      # plain iteration stops at the IndexError


# --------------------------------------------------------------------------- validation pairs


def test_validation_pairs():
    pairs = validation_pairs(3, max_size=100)
    assert [n for n, _, _ in pairs] == list_images("valid")
    for name, lr, hr in pairs:
        full = get_image(name)
        h, w = min(full.shape[0], 100), min(full.shape[1], 100)
        top, left = (full.shape[0] - h) // 2, (full.shape[1] - w) // 2
        crop = full[top:top + h, left:left + w]
        hr_exp, lr_exp = make_lr(crop, 3, mode="uint8")
        assert hr.shape == (99, 99, 3) and lr.shape == (33, 33, 3)
        np.testing.assert_array_equal(hr, hr_exp)
        np.testing.assert_array_equal(lr, lr_exp)
    (name, lr, hr), = validation_pairs(2, names=["texture:zoneplate:5"])
    assert hr.shape == (256, 256, 3) and lr.shape == (128, 128, 3)
    with pytest.raises(ValueError, match="max_size"):
        validation_pairs(4, max_size=2)
