"""Reference pairs for RefSR (srlearn.data.refpairs): the five similarity levels, the dataset, CUFED5's layout."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from srlearn.data import (LEVELS, RefPairDataset, cufed5_pairs, fit_reference, get_image, imresize, make_lr,
                          make_reference, pil_bicubic_down, reference_pairs, to_tensor)
from srlearn.metrics import psnr


@pytest.fixture(scope="module")
def img():
    return get_image("astronaut")


def _ref(img, level, seed=0, other=None, top=100, left=120, size=64, shift=8):
    return make_reference(img, top, left, size, level, np.random.default_rng(seed), other, shift)


def test_xh_is_the_window_shifted_by_the_drawn_amount(img):
    ref, p = _ref(img, "XH", seed=3)
    assert -8 <= p["dy"] <= 8 and -8 <= p["dx"] <= 8 and (p["dy"], p["dx"]) != (0, 0)
    np.testing.assert_array_equal(ref, img[100 + p["dy"]:164 + p["dy"], 120 + p["dx"]:184 + p["dx"]])


def test_h_is_a_rotated_zoomed_copy_and_m_recolours_it(img):
    ref_h, p = _ref(img, "H", seed=1)
    assert 3 <= abs(p["angle"]) <= 12 and 0.8 <= p["zoom"] <= 1.25
    # undo the warp: the HR window rotated/zoomed back matches the centre of the reference
    from srlearn.data.refpairs import _warp
    again = _warp(img, 100 + p["dy"] + 31.5, 120 + p["dx"] + 31.5, 64, p["angle"], p["zoom"])
    np.testing.assert_array_equal(ref_h, again)
    window = img[100 + p["dy"]:164 + p["dy"], 120 + p["dx"]:184 + p["dx"]]
    assert psnr(ref_h, window, crop=0) < 25                      # deformed: not the plain window
    assert psnr(_warp(img, 100 + p["dy"] + 31.5, 120 + p["dx"] + 31.5, 64, 0.0, 1.0), window, crop=0) > 40
    ref_m, pm = _ref(img, "M", seed=1)
    assert pm["angle"] == p["angle"] and pm["zoom"] == p["zoom"]   # same draws, then the colours change
    assert np.abs(ref_m.astype(int) - ref_h.astype(int)).mean() > 10


def test_l_does_not_overlap_and_xl_comes_from_the_other_image(img):
    small = img[:200, :200]                          # a random window here overlaps the central one half the time
    for seed in range(20):
        ref, p = make_reference(small, 68, 68, 64, "L", np.random.default_rng(seed))
        assert abs(p["top"] - 68) >= 64 or abs(p["left"] - 68) >= 64, p
        np.testing.assert_array_equal(ref, small[p["top"]:p["top"] + 64, p["left"]:p["left"] + 64])
    with pytest.raises(ValueError, match="at least 128"):
        make_reference(img[:100, :100], 18, 18, 64, "L", np.random.default_rng(0))
    other = get_image("coffee")
    ref, p = _ref(img, "XL", seed=2, other=other)
    np.testing.assert_array_equal(ref, other[p["top"]:p["top"] + 64, p["left"]:p["left"] + 64])
    with pytest.raises(ValueError, match="other="):
        _ref(img, "XL")
    with pytest.raises(ValueError, match="unknown similarity level"):
        _ref(img, "VH")
    with pytest.raises(ValueError, match="margin"):
        _ref(img, "XH", top=3)


def test_similarity_falls_level_by_level(img):
    """Over many draws: pixel agreement (PSNR to the window) falls XH > H > M > {L, XL}; colour statistics
    (total-variation distance of 4x4x4 colour histograms) drift away at every step XH < H < M < L < XL."""
    other = get_image("coffee")
    agree, drift = [], []
    for level in LEVELS:
        scores, dists = [], []
        for s in range(12):
            rng = np.random.default_rng(s)
            top, left = int(rng.integers(8, 512 - 72)), int(rng.integers(8, 512 - 72))
            ref, _ = make_reference(img, top, left, 64, level, rng, other)
            window = img[top:top + 64, left:left + 64]
            scores.append(psnr(ref, window, crop=0))
            hist = lambda a: np.histogramdd(a.reshape(-1, 3), bins=4, range=[(0, 256)] * 3)[0] / a[..., 0].size
            dists.append(np.abs(hist(ref) - hist(window)).sum() / 2)
        agree.append(np.mean(scores))
        drift.append(np.mean(dists))
    assert agree[0] > agree[1] > agree[2] > max(agree[3], agree[4]), dict(zip(LEVELS, np.round(agree, 2)))
    assert all(a < b for a, b in zip(drift, drift[1:])), dict(zip(LEVELS, np.round(drift, 3)))


def test_dataset_items_are_aligned_deterministic_and_augmented_together():
    ds = RefPairDataset(["astronaut", "coffee"], scale=4, lr_patch=12, length=40, seed=5, augment=True)
    lr, hr, ref = ds[7]
    assert lr.shape == (3, 12, 12) and hr.shape == (3, 48, 48) and ref.shape == (3, 48, 48)
    for a, b in zip(ds[7], RefPairDataset(["astronaut", "coffee"], scale=4, lr_patch=12, length=40, seed=5)[7]):
        assert torch.equal(a, b)                                 # a pure function of (seed, i)
    other_seed = RefPairDataset(["astronaut", "coffee"], scale=4, lr_patch=12, length=40, seed=6)
    assert not torch.equal(ds[7][0], other_seed[7][0])
    # LR is the MATLAB bicubic of HR (float path rounded): check away from the patch border
    for i in range(6):
        lr, hr, ref = ds[i]
        hr_u8 = (hr.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        again = np.clip(np.floor(imresize(hr_u8, 0.25, mode="float") + 0.5), 0, 255) / 255
        np.testing.assert_allclose(lr.permute(1, 2, 0).numpy()[3:-3, 3:-3], again[3:-3, 3:-3], atol=1.01 / 255)
    # the geometry between input and XH reference survives the dihedral transform
    ds_xh = RefPairDataset(["astronaut", "coffee"], scale=4, lr_patch=12, length=40, seed=1, levels=["XH"], shift=0)
    for i in range(8):
        _, hr, ref = ds_xh[i]
        assert torch.equal(hr, ref), ds_xh.params(i)
    levels = [ds.params(i)["level"] for i in range(40)]
    assert set(levels) == set(LEVELS)


def test_dataset_level_weights_and_errors():
    ds = RefPairDataset(["astronaut", "coffee"], lr_patch=8, length=30, levels=["XH", "XL"], weights=[0, 1])
    assert {ds.params(i)["level"] for i in range(30)} == {"XL"}
    assert all(ds.params(i)["other"] != ds.params(i)["image"] for i in range(30))
    with pytest.raises(ValueError, match="weights"):
        RefPairDataset(["astronaut", "coffee"], lr_patch=8, weights=[1, 2])
    with pytest.raises(ValueError, match="another image"):
        RefPairDataset(["astronaut"], lr_patch=8, levels=["XL"])
    with pytest.raises(ValueError, match="too small"):
        RefPairDataset(["astronaut", "coffee"], lr_patch=130)
    with pytest.raises(IndexError):
        ds[30]


def test_reference_pairs_share_inputs_across_levels():
    pairs = {lv: reference_pairs(lv, scale=4, size=48, crops=2) for lv in LEVELS}
    for lv, items in pairs.items():
        assert len(items) == 6 and all(n.startswith(f"{lv}/") for n, *_ in items)
        for (_, lr, hr, ref), (_, lr0, hr0, _) in zip(items, pairs["XH"]):
            np.testing.assert_array_equal(lr, lr0)
            np.testing.assert_array_equal(hr, hr0)
            assert lr.shape == (12, 12, 3) and hr.shape == ref.shape == (48, 48, 3) and ref.dtype == np.uint8
            np.testing.assert_array_equal(lr, make_lr(hr, 4, mode="uint8")[1])
    with pytest.raises(ValueError, match="multiple of the scale"):
        reference_pairs("XH", size=50)


def test_fit_reference_crops_or_pads():
    ref = np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3)
    np.testing.assert_array_equal(fit_reference(ref, (4, 6)), ref[:4, :6])
    big = fit_reference(ref, (6, 9))
    np.testing.assert_array_equal(big[:5, :7], ref)
    assert big.shape == (6, 9, 3) and big[5:].sum() == 0 and big[:, 7:].sum() == 0


def test_cufed5_pairs_reads_the_layout_with_pil_bicubic(tmp_path):
    rng = np.random.default_rng(0)
    for gid in ("000", "001"):
        Image.fromarray(rng.integers(0, 256, (50, 45, 3), dtype=np.uint8)).save(tmp_path / f"{gid}_0.png")
        for k in range(1, 6):
            Image.fromarray(rng.integers(0, 256, (40 + k, 52, 3), dtype=np.uint8)).save(tmp_path / f"{gid}_{k}.png")
    items = cufed5_pairs(tmp_path, scale=4, ref_index=2)
    assert [n for n, *_ in items] == ["000", "001"]
    name, lr, hr, ref = items[0]
    src = np.asarray(Image.open(tmp_path / "000_0.png"))[:48, :44]
    np.testing.assert_array_equal(hr, src)                        # mod-cropped, never resized
    np.testing.assert_array_equal(lr, np.asarray(Image.fromarray(src).resize((11, 12), Image.BICUBIC)))
    assert not np.array_equal(lr, np.clip(np.floor(imresize(src, 0.25) + 0.5), 0, 255).astype(np.uint8))
    ref_src = np.asarray(Image.open(tmp_path / "000_2.png"))
    assert ref.shape == hr.shape
    np.testing.assert_array_equal(ref[:42], ref_src[:42, :44])
    assert ref[42:].sum() == 0
    np.testing.assert_array_equal(pil_bicubic_down(src, 4), lr)
    with pytest.raises(ValueError, match="ref_index"):
        cufed5_pairs(tmp_path, ref_index=6)
    (tmp_path / "001_5.png").unlink()
    with pytest.raises(ValueError, match="lacks"):
        cufed5_pairs(tmp_path, ref_index=5)


def test_items_feed_the_model_as_the_training_loop_does():
    from srlearn import models
    ds = RefPairDataset(["astronaut", "coffee"], lr_patch=12, length=4)
    lr, hr, ref = (torch.stack(t) for t in zip(*[ds[i] for i in range(2)]))
    model = models.build("ssen", "mini")
    assert model(lr, ref).shape == hr.shape
    _, lr_u8, hr_u8, ref_u8 = reference_pairs("H", size=48, crops=1)[0]
    assert model(to_tensor(lr_u8)[None], to_tensor(ref_u8)[None]).shape[-2:] == hr_u8.shape[:2]
