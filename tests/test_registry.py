"""srlearn.data.registry without any network: file:// archives, fake downloaders, synthetic PNGs."""
from __future__ import annotations

import dataclasses
import hashlib
import io
import re
import shutil
import socket
import stat
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pooch
import pytest
from PIL import Image

from srlearn.data import registry as R

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def offline(tmp_path, monkeypatch):
    """Every test: its own cache via SRLEARN_DATA, no registrations, and any network use fails loudly."""
    def no_network(*args, **kwargs):
        raise AssertionError("a test tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(pooch.HTTPDownloader, "__call__", no_network)
    monkeypatch.setattr(pooch.FTPDownloader, "__call__", no_network)
    monkeypatch.setattr(R, "_LOCAL", {})
    monkeypatch.setenv("SRLEARN_DATA", str(tmp_path / "cache"))
    return tmp_path / "cache"


def leftovers(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


def make_zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(zipfile.ZipInfo(name), data)
    return path


def tar_with(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w") as tf:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def tinfo(name, kind=tarfile.REGTYPE, linkname=""):
    t = tarfile.TarInfo(name)
    t.type, t.linkname = kind, linkname
    return t


def png_bytes(w=8, h=6, value=0) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((h, w, 3), value, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def register_fake(monkeypatch, tmp_path, name="fake", data=None, **over) -> R.Dataset:
    """A 'download' entry whose URL is a local file:// zip, checksums computed here with hashlib."""
    src = tmp_path / "server" / f"{name}.zip"
    src.parent.mkdir(parents=True, exist_ok=True)
    if data is None:
        make_zip(src, {"top/0001.png": png_bytes(), "top/0002.png": png_bytes(value=9)})
    else:
        src.write_bytes(data)
    blob = src.read_bytes()
    fields = dict(name=name, title="fake", policy="download", urls=(src.as_uri(),), fname=f"{name}.zip",
                  size=len(blob), sha256=hashlib.sha256(blob).hexdigest(), md5=hashlib.md5(blob).hexdigest(),
                  content="top", check="*.png", layout="top/*.png", licence="test", source="test")
    fields.update(over)
    ds = R.Dataset(**fields)
    monkeypatch.setitem(R.DATASETS, name, ds)
    return ds


@pytest.fixture
def calls(monkeypatch):
    """Count downloads by wrapping the registry's downloader factory."""
    log = []
    real = R._downloader

    def counting(url, progressbar):
        log.append(url)
        return real(url, progressbar)

    monkeypatch.setattr(R, "_downloader", counting)
    return log


# --------------------------------------------------------------------------------------------- the entries
def test_entries_are_documented_and_consistent():
    assert R.list_datasets()[:8] == [f"DIV2K_{s}_{k}" for s in ("train", "valid")
                                     for k in ("HR", "LR_bicubic_X2", "LR_bicubic_X3", "LR_bicubic_X4")]
    readme = (REPO / "data" / "README.md").read_text(encoding="utf-8")
    for name, d in R.DATASETS.items():
        assert name in readme
        for value in (d.sha256, d.md5, *d.urls):
            if value:
                assert value in readme, (name, value)
        if d.size is not None:
            assert f"{d.size:,}" in readme, (name, d.size)
        if d.policy == "download":
            assert d.verified and d.urls[0].startswith("https://") and d.urls[0].endswith(d.fname)
    assert R.DATASETS["benchmark"].size is None and "not known" in R.DATASETS["benchmark"].size_note
    assert R.list_datasets("never") == ["Manga109"] and R.list_datasets("manual") == ["CUFED5"]
    assert R.get("div2k_valid_hr") is R.DATASETS["DIV2K_valid_HR"]
    with pytest.raises(ValueError, match="DIV2K_valid_HR"):
        R.get("DIV2K_val_HR")
    with pytest.raises(ValueError, match="hex"):
        dataclasses.replace(R.DATASETS["benchmark"], md5="not-a-hash")


def test_cache_dir_env_override_and_default(monkeypatch, tmp_path, offline):
    assert R.cache_dir() == offline.resolve()
    monkeypatch.delenv("SRLEARN_DATA")
    assert R.cache_dir() == Path(pooch.os_cache("srlearn")).expanduser()


# ---------------------------------------------------------------------------------------------- verify_file
def test_verify_file(tmp_path):
    f = tmp_path / "f.bin"
    f.write_bytes(b"super-resolution" * 1000)
    sha, md5 = hashlib.sha256(f.read_bytes()).hexdigest(), hashlib.md5(f.read_bytes()).hexdigest()
    got = R.verify_file(f, sha256=sha.upper(), md5=md5, size=16000)
    assert got == {"size": 16000, "sha256": sha, "md5": md5}
    with pytest.raises(R.ChecksumError, match="size is 16,000 bytes, expected 15,999"):
        R.verify_file(f, sha256=sha, size=15999)
    with pytest.raises(R.ChecksumError, match="sha256"):
        R.verify_file(f, sha256="0" * 64)
    with pytest.raises(R.ChecksumError, match="md5"):
        R.verify_file(f, sha256=sha, md5="0" * 32)
    with pytest.raises(ValueError, match="at least one"):
        R.verify_file(f)
    with pytest.raises(ValueError, match="64-digit"):
        R.verify_file(f, sha256=md5)
    with pytest.raises(FileNotFoundError):
        R.verify_file(tmp_path / "missing", size=1)


# --------------------------------------------------------------------------------------------------- fetch
def test_fetch_downloads_verifies_extracts_then_reuses(monkeypatch, tmp_path, offline, calls):
    register_fake(monkeypatch, tmp_path)
    out = R.fetch("fake", progressbar=False)
    assert out == offline.resolve() / "fake" / "extracted" / "top"
    assert sorted(p.name for p in out.iterdir()) == ["0001.png", "0002.png"]
    assert len(calls) == 1
    assert not [p for p in leftovers(offline) if p.endswith((".part", ".partial"))]
    assert R.fetch("fake") == out and len(calls) == 1  # extracted tree reused
    shutil.rmtree(out.parent)  # extracted tree gone, verified archive still cached
    assert R.fetch("fake") == out and len(calls) == 1  # archive reused, not downloaded again
    assert (out / "0002.png").is_file()


def test_fetch_https_goes_through_pooch_downloader(monkeypatch, tmp_path, offline):
    ds = register_fake(monkeypatch, tmp_path)
    blob = Path(R.get("fake").urls[0][len("file://"):]).read_bytes()
    monkeypatch.setitem(R.DATASETS, "fake", dataclasses.replace(ds, urls=("https://example.invalid/fake.zip",)))
    seen = []

    def download(self, url, output_file, pooch_obj=None, check_only=False):
        seen.append((url, self.progressbar))
        Path(output_file).write_bytes(blob)

    monkeypatch.setattr(pooch.HTTPDownloader, "__call__", download)
    out = R.fetch("fake", progressbar=True)
    assert seen == [("https://example.invalid/fake.zip", True)] and (out / "0001.png").is_file()


@pytest.mark.parametrize("field,value,message", [("sha256", "0" * 64, "sha256"), ("md5", "f" * 32, "md5"),
                                                 ("size", 12, "size")])
def test_checksum_mismatch_raises_and_leaves_nothing(monkeypatch, tmp_path, offline, calls, field, value, message):
    register_fake(monkeypatch, tmp_path, **{field: value})
    with pytest.raises(R.ChecksumError, match=message) as info:
        R.fetch("fake", progressbar=False)
    assert "by hand" in str(info.value) and "register_local" in str(info.value)
    assert leftovers(offline) in ([], ["fake"])  # at most the empty dataset folder
    assert len(calls) == 1


def test_html_page_is_rejected_with_instructions(monkeypatch, tmp_path, offline):
    page = b"\n<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title></head></html>"
    register_fake(monkeypatch, tmp_path, data=page, size=None, md5=None)
    with pytest.raises(R.ChecksumError, match="HTML page") as info:
        R.fetch("fake", progressbar=False)
    assert "by hand" in str(info.value)
    assert leftovers(offline) in ([], ["fake"])


def test_corrupt_cached_archive_is_downloaded_again(monkeypatch, tmp_path, offline, calls):
    register_fake(monkeypatch, tmp_path)
    bad = offline / "fake" / "fake.zip"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"truncated")
    out = R.fetch("fake")
    assert len(calls) == 1 and (out / "0001.png").is_file()
    R.verify_file(bad, sha256=R.get("fake").sha256)


def test_unverified_entry_needs_explicit_consent(monkeypatch, tmp_path, calls):
    register_fake(monkeypatch, tmp_path, sha256=None, md5=None)
    with pytest.raises(ValueError, match="allow_unverified=True"):
        R.fetch("fake")
    assert calls == []
    assert (R.fetch("fake", allow_unverified=True) / "0001.png").is_file() and len(calls) == 1


def test_manga109_and_cufed5_never_download(tmp_path, offline, calls):
    for name, words in (("Manga109", "never downloaded"), ("CUFED5", "Google Drive")):
        with pytest.raises(R.ManualDownloadRequired, match=words) as info:
            R.fetch(name, allow_unverified=True)
        assert "register_local" in str(info.value)
    assert "1Fa1mopExA9YGG1RxrCZZn7QFTYXLx6ph" in str(R.DATASETS["CUFED5"].urls)
    assert calls == [] and leftovers(offline) == []
    # a copy the user placed in the cache (one level down, as an unzipped folder would be) is used
    placed = offline / "CUFED5" / "CUFED5"
    placed.mkdir(parents=True)
    (placed / "000_0.png").write_bytes(png_bytes())
    assert R.fetch("cufed5") == placed
    # a registered local copy wins, and must look like the dataset
    mine = tmp_path / "my_manga"
    mine.mkdir()
    with pytest.raises(ValueError, match="no file matching"):
        R.register_local("Manga109", mine)
    (mine / "vol.png").write_bytes(png_bytes())
    R.register_local("Manga109", mine)
    assert R.fetch("Manga109") == mine.resolve() and calls == []
    R.register_local("Manga109", None)
    with pytest.raises(R.ManualDownloadRequired):
        R.fetch("Manga109")


def test_register_local_short_circuits_download(tmp_path, calls):
    hr = tmp_path / "my_div2k_hr"
    hr.mkdir()
    (hr / "0801.png").write_bytes(png_bytes())
    R.register_local("DIV2K_valid_HR", hr)
    assert R.fetch("DIV2K_valid_HR") == hr.resolve() and calls == []
    with pytest.raises(ValueError, match="not a folder"):
        R.register_local("DIV2K_valid_HR", tmp_path / "nope")


# -------------------------------------------------------------------------------------------- safe_extract
UNSAFE_TAR = {
    "dotdot": [(tinfo("ok.txt"), b"fine"), (tinfo("../evil.txt"), b"x")],
    "nested-dotdot": [(tinfo("a/b/../../../evil.txt"), b"x")],
    "absolute": [(tinfo("/tmp/srlearn-evil.txt"), b"x")],
    "symlink-out": [(tinfo("link", tarfile.SYMTYPE, "../outside"), None)],
    "symlink-abs": [(tinfo("link", tarfile.SYMTYPE, "/etc/passwd"), None)],
    "hardlink-out": [(tinfo("hl", tarfile.LNKTYPE, "../outside"), None)],
    "device": [(tinfo("dev", tarfile.CHRTYPE), None)],
    "fifo": [(tinfo("fifo", tarfile.FIFOTYPE), None)],
    # each link alone stays inside; together 'b' resolves to the parent (caught by the data filter)
    "link-chain": [(tinfo("a", tarfile.SYMTYPE, "."), None), (tinfo("b", tarfile.SYMTYPE, "a/.."), None),
                   (tinfo("b/evil.txt"), b"x")],
}


@pytest.mark.parametrize("case", sorted(UNSAFE_TAR))
def test_safe_extract_rejects_unsafe_tar(tmp_path, case):
    work = tmp_path / "work"
    work.mkdir()
    archive = tar_with(tmp_path / "bad.tar", UNSAFE_TAR[case])
    with pytest.raises(ValueError, match="unsafe archive"):
        R.safe_extract(archive, work / "target")
    assert leftovers(work) == []  # no target, no temporary sibling
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "outside").exists()


@pytest.mark.parametrize("name", ["../evil.txt", "/abs/evil.txt", "ok/../../evil.txt", "C:/evil.txt"])
def test_safe_extract_rejects_unsafe_zip_names(tmp_path, name):
    work = tmp_path / "work"
    work.mkdir()
    archive = make_zip(tmp_path / "bad.zip", {"ok.txt": b"fine", name: b"x"})
    with pytest.raises(ValueError, match="unsafe archive"):
        R.safe_extract(archive, work / "target")
    assert leftovers(work) == [] and not (tmp_path / "evil.txt").exists()


def test_safe_extract_rejects_zip_symlink(tmp_path):
    info = zipfile.ZipInfo("link")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(info, "../outside")
    with pytest.raises(ValueError, match="symbolic link"):
        R.safe_extract(archive, tmp_path / "t")
    assert not (tmp_path / "t").exists()


def test_safe_extract_good_tar_and_zip(tmp_path):
    archive = tar_with(tmp_path / "good.tar", [(tinfo("d", tarfile.DIRTYPE), None), (tinfo("d/x.txt"), b"hello"),
                                                (tinfo("d/alias", tarfile.SYMTYPE, "x.txt"), None),
                                                (tinfo("d/hard", tarfile.LNKTYPE, "d/x.txt"), None)])
    out = R.safe_extract(archive, tmp_path / "t")
    assert (out / "d" / "alias").read_text() == "hello" and (out / "d" / "hard").read_text() == "hello"
    with pytest.raises(FileExistsError):
        R.safe_extract(archive, tmp_path / "t")
    z = make_zip(tmp_path / "g.zip", {"a/b.txt": b"zip"})
    assert (R.safe_extract(z, tmp_path / "z") / "a" / "b.txt").read_bytes() == b"zip"
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"neither")
    with pytest.raises(ValueError, match="neither a zip nor a tar"):
        R.safe_extract(junk, tmp_path / "j")


# ------------------------------------------------------------------------------------------------- layouts
def write_png(path: Path, w: int, h: int):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(path)


def test_pair_div2k_and_benchmark_naming(tmp_path):
    hr, lr = tmp_path / "DIV2K_valid_HR", tmp_path / "DIV2K_valid_LR_bicubic"
    for stem in ("0802", "0801"):
        write_png(hr / f"{stem}.png", 26, 17)  # mod-crops to 24x16 at x4
        write_png(lr / "X4" / f"{stem}x4.png", 6, 4)
        write_png(lr / "X2" / f"{stem}x2.png", 13, 8)
    expect = [(hr / "0801.png", lr / "X4" / "0801x4.png"), (hr / "0802.png", lr / "X4" / "0802x4.png")]
    assert R.pair_div2k(hr, lr, 4) == expect
    assert R.pair_div2k(hr, lr / "X4", 4) == expect
    assert R.pair_div2k(hr, lr, 2)[0] == (hr / "0801.png", lr / "X2" / "0801x2.png")
    with pytest.raises(ValueError, match="not a x3 pair|do not pair"):
        R.pair_div2k(hr, lr / "X4", 3)

    bench = tmp_path / "benchmark" / "Set5"
    write_png(bench / "HR" / "baby.png", 12, 8)
    write_png(bench / "LR_bicubic" / "X4" / "babyx4.png", 3, 2)
    assert R.pair_div2k(bench / "HR", bench / "LR_bicubic", 4) == [
        (bench / "HR" / "baby.png", bench / "LR_bicubic" / "X4" / "babyx4.png")]

    (lr / "X4" / "0802x4.png").unlink()
    with pytest.raises(ValueError, match=r"1 HR without .*0802"):
        R.pair_div2k(hr, lr, 4)
    write_png(lr / "X4" / "0802x4.png", 7, 4)  # 7*4 = 28 > 26
    with pytest.raises(ValueError, match="not a x4 pair"):
        R.pair_div2k(hr, lr, 4)
    assert len(R.pair_div2k(hr, lr, 4, check_sizes=False)) == 2


def test_pair_cufed5(tmp_path):
    for gid in ("001", "000"):
        for k in range(6):
            write_png(tmp_path / f"{gid}_{k}.png", 8, 8)
    groups = R.pair_cufed5(tmp_path)
    assert groups == [(tmp_path / f"{g}_0.png", [tmp_path / f"{g}_{k}.png" for k in range(1, 6)])
                      for g in ("000", "001")]
    (tmp_path / "001_3.png").unlink()
    with pytest.raises(ValueError, match=re.escape("'001'") + ".*001_3.png"):
        R.pair_cufed5(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=re.escape("no {id}_0.png")):
        R.pair_cufed5(tmp_path / "empty")
    with pytest.raises(ValueError, match="not a folder"):
        R.pair_cufed5(tmp_path / "missing")
