"""Registry of the public datasets srlearn can use, with verified downloads and safe extraction.

Nothing here runs at import time and nothing is ever downloaded by the tests or the quick-mode notebooks:
srlearn trains on images it ships or generates (sr-protocol.md §8.15). For readers with a network, ``fetch``
downloads an archive with pooch into a cache outside git, checks its size and checksums against the values
recorded below (sr-protocol.md §3, §8.13), and extracts it without letting any member escape the target.

* cache folder: ``cache_dir()``: ``$SRLEARN_DATA`` if set, else ``pooch.os_cache("srlearn")``
  (e.g. ``~/.cache/srlearn`` on Linux). Each dataset lives in ``<cache>/<name>/``: the archive, and its
  extracted tree ``<cache>/<name>/extracted/``.
* policies: ``"download"`` (fetched automatically: DIV2K, EDSR's benchmark.tar), ``"manual"`` (only on
  Google Drive, whose interstitial pages defeat scripted downloads: CUFED5) and ``"never"`` (terms forbid
  redistribution and need an application: Manga109). For the last two ``fetch`` never touches the network:
  it returns a copy the user placed in ``<cache>/<name>/`` or registered with ``register_local``, or
  raises ``ManualDownloadRequired`` with instructions.
* nothing is lost and nothing half-written is left: downloads go to a temporary name, are verified (not an
  HTML page; size; SHA-256 and/or MD5), and only then renamed into place; extraction goes to a temporary
  sibling folder renamed into place when complete. A cached archive that verifies is reused. Temporary
  names carry the writer's pid, and ``fetch`` first removes those whose writer is gone (a SIGKILL mid-
  download leaves no gigabytes behind for good).
* a network failure (refused or dropped connection, 404, timeout) is ``DownloadError`` naming the URL
  and how to download the file by hand and where to put it.

The values (URLs, byte sizes, SHA-256, MD5) are copied from sr-protocol.md §3, which cites their sources
(TFDS ``url_checksums/div2k.txt`` for sizes and SHA-256, torchSR for MD5). Where a value is not known the
field is ``None`` and the entry says so; nothing was guessed.
"""
from __future__ import annotations

import difflib
import errno
import ftplib
import hashlib
import logging
import os
import re
import shutil
import stat
import tarfile
import tempfile
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .. import _files
from ..registry import Registry

__all__ = ["Dataset", "DATASETS", "ChecksumError", "DownloadError", "ManualDownloadRequired", "list_datasets", "get",
           "cache_dir", "fetch", "local_copy", "verify_file", "safe_extract", "register_local", "pair_div2k",
           "pair_cufed5"]

log = logging.getLogger(__name__)
_PNG = ".png"


class ChecksumError(ValueError):
    """A file is not what the registry expects (wrong size or hash, or an HTML page instead of data)."""


class DownloadError(ConnectionError):
    """No URL of a dataset could be downloaded (network down, refused, 404, ...); the message says how
    to download it by hand and where to put the file."""


class ManualDownloadRequired(FileNotFoundError):
    """The dataset is not present locally and srlearn will not download it; the message says how to get it."""


# ------------------------------------------------------------------------------------------------ entries
@dataclass(frozen=True)
class Dataset:
    """One downloadable unit (an archive) or one manually obtained dataset.

    ``urls``: download URL(s), tried in order (``"download"`` policy), or the page to get it by hand.
    ``size``: exact byte count, ``None`` when not known (``size_note`` says what is known).
    ``sha256``/``md5``: hex digests, ``None`` when not known. ``content``: the folder inside the extracted
    archive that ``fetch`` returns; ``check``: a glob, relative to that folder, that must match at least one
    file (catches a changed archive layout or a wrong local folder). ``source`` cites the values.
    """

    name: str
    title: str
    policy: str                       # "download" | "manual" | "never"
    urls: tuple[str, ...]
    fname: str | None
    size: int | None
    sha256: str | None
    md5: str | None
    content: str
    check: str
    layout: str
    licence: str
    source: str
    size_note: str = ""
    notes: str = ""
    homepage: str = ""

    def __post_init__(self):
        if self.policy not in ("download", "manual", "never"):
            raise ValueError(f"{self.name}: policy must be 'download', 'manual' or 'never', got {self.policy!r}")
        for algo, value, n in (("sha256", self.sha256, 64), ("md5", self.md5, 32)):
            if value is not None and not re.fullmatch(f"[0-9a-f]{{{n}}}", value):
                raise ValueError(f"{self.name}: {algo} must be {n} lower-case hex digits, got {value!r}")
        if self.policy == "download" and (not self.urls or not self.fname):
            raise ValueError(f"{self.name}: a 'download' entry needs urls and fname")

    @property
    def verified(self) -> bool:
        """True when a checksum is recorded, so a download can be verified."""
        return self.sha256 is not None or self.md5 is not None

    def describe(self) -> str:
        """A few lines for a notebook: what it is, where from, size, checksums, licence, layout."""
        size = f"{self.size:,} bytes" if self.size is not None else f"unknown ({self.size_note or 'not recorded'})"
        lines = [f"{self.name}: {self.title}", f"  policy   : {self.policy}",
                 f"  url      : {', '.join(self.urls) or '-'}", f"  size     : {size}",
                 f"  sha256   : {self.sha256 or 'not known'}", f"  md5      : {self.md5 or 'not known'}",
                 f"  licence  : {self.licence}", f"  layout   : {self.layout}", f"  source   : {self.source}"]
        if self.notes:
            lines.append(f"  notes    : {self.notes}")
        return "\n".join(lines)


_DIV2K_BASE = "https://data.vision.ee.ethz.ch/cvl/DIV2K/"
_DIV2K_LICENCE = ("academic use only: no formal licence text was found; the HF dataset card eugenesiow/Div2k "
                  "tags it 'other-academic-use' [sr-protocol.md §3.1]. Never redistribute.")
_DIV2K_SOURCE = "size and SHA-256: TFDS url_checksums/div2k.txt; MD5: torchSR torchsr/datasets/div2k.py [sr-protocol.md §3.1]"

# (split, kind, scale, bytes, sha256, md5) exactly as in sr-protocol.md §3.1
_DIV2K = [
    ("train", "HR", None, 3530603713,
     "9d0b9c463f6e35b6c62cc6a930ee2224f670b34c1df841a57670f9acf0f6c335", "bdc2d9338d4e574fe81bf7d158758658"),
    ("train", "LR_bicubic", 2, 925390592,
     "a53a424317575838dadce4bcd97cf7b744d6855f43740ed5f0245af3cf4bd850", "9a637d2ef4db0d0a81182be37fb00692"),
    ("train", "LR_bicubic", 3, 427847282,
     "ad5c8e5507e2765823d3c2c5bd0934842efcd487c5370604c224090898b3163a", "ad80b9fe40c049a07a8a6c51bfab3b6d"),
    ("train", "LR_bicubic", 4, 246914039,
     "f006b837f4eb52b82909aa01478e6d6d199eefce932179491d0c9dbb706dde3a", "76c43ec4155851901ebbe8339846d93d"),
    ("valid", "HR", None, 448993893,
     "20dd31fd84d777bc1cf5d6b7654a3f569c0aec74458ae094122ad1d0489900fc", "9fcdda83005c5e5997799b69f955ff88"),
    ("valid", "LR_bicubic", 2, 117763600,
     "60eed9875c697df51204aa579e2a699e1d5215095788a097ff54dd17e2664d57", "1512c9a3f7bde2a1a21a73044e46b9cb"),
    ("valid", "LR_bicubic", 3, 54513392,
     "04b9a2ed3b4a0715d3924d3ae8514830c3328fac8d30512ce716d6f419e052a3", "18b1d310f9f88c13618c287927b29898"),
    ("valid", "LR_bicubic", 4, 31505881,
     "a50a5d1c4b88de4e8d300d8fb2b904c52fe93b2b298a4899697760d7cbb6d553", "21962de700c8d368c6ff83314480eff0"),
]


def _div2k_entry(split, kind, scale, size, sha256, md5) -> Dataset:
    ids = "0001-0800" if split == "train" else "0801-0900"
    if kind == "HR":
        name, content, check = f"DIV2K_{split}_HR", f"DIV2K_{split}_HR", "[0-9][0-9][0-9][0-9].png"
        title = f"DIV2K {split} HR, {ids} (2K PNGs)"
        layout = f"DIV2K_{split}_HR/0001.png (ids {ids})"
    else:
        name = f"DIV2K_{split}_LR_bicubic_X{scale}"
        content, check = f"DIV2K_{split}_LR_bicubic/X{scale}", f"[0-9][0-9][0-9][0-9]x{scale}.png"
        title = f"DIV2K {split} LR, MATLAB bicubic x{scale}, {ids}"
        layout = f"DIV2K_{split}_LR_bicubic/X{scale}/0001x{scale}.png (ids {ids}); pair with pair_div2k"
    return Dataset(name=name, title=title, policy="download", urls=(_DIV2K_BASE + name + ".zip",),
                   fname=name + ".zip", size=size, sha256=sha256, md5=md5, content=content, check=check,
                   layout=layout + " [torchSR track_dirs, EDSR srdata._scan; sr-protocol.md §3.1]",
                   licence=_DIV2K_LICENCE, source=_DIV2K_SOURCE, homepage=_DIV2K_BASE,
                   notes="The 100 test HR images (0901-1000) were never released [sr-protocol.md §3.1].")


_ENTRIES = [_div2k_entry(*row) for row in _DIV2K] + [
    Dataset(
        name="benchmark", title="EDSR benchmark.tar: Set5, Set14, B100, Urban100 (HR + bicubic LR x2/x3/x4)",
        policy="download", urls=("https://cv.snu.ac.kr/research/EDSR/benchmark.tar",), fname="benchmark.tar",
        size=None, size_note="about 250 MB per the EDSR docs [D]; exact byte count not known",
        sha256=None, md5="4ace41d33c2384b97e6b320cd0afd6ba", content="benchmark", check="Set5/HR/*.png",
        layout="benchmark/{Set5,Set14,B100,Urban100}/HR/<name>.png and "
               "benchmark/<set>/LR_bicubic/X{2,3,4}/<name>x{s}.png [torchSR benchmarks.py; sr-protocol.md §3.3]",
        licence="no licence stated in the sources read [sr-protocol.md §3.3]; treat as academic use only, "
                "never redistribute.",
        source="URL and MD5: torchSR; size: EDSR docs [sr-protocol.md §3.3]",
        notes="No Manga109. How its LR files were generated (MATLAB uint8 or double path) is not documented "
              "[sr-protocol.md §3.3]: srlearn makes its own LR from the HR with imresize(mode='uint8'). "
              "Set14 'bridge' and 'man' are gray [sr-protocol.md §2.3]."),
    Dataset(
        name="CUFED5", title="CUFED5 reference-based SR test set (126 groups, 000-125)",
        policy="manual", urls=("https://drive.google.com/file/d/1Fa1mopExA9YGG1RxrCZZn7QFTYXLx6ph/view",),
        fname=None, size=None, size_note="not known", sha256=None, md5=None, content="", check="*_0.png",
        layout="{id}_0.png (HR input) and {id}_1.png ... {id}_5.png (references by decreasing similarity), "
               "id 000-125; evaluation pairs {id}_0 with {id}_1 [C2-Matching; sr-protocol.md §3.4]",
        licence="no licence stated anywhere found [sr-protocol.md §3.4]; research use, never redistribute.",
        source="Google Drive file id from C2-Matching's README [sr-protocol.md §3.4]; no checksum is known",
        notes="Google Drive only: srlearn never downloads it. RefSR makes its LR with PIL bicubic, not MATLAB "
              "[sr-protocol.md §1.6]."),
    Dataset(
        name="Manga109", title="Manga109 (109 manga volumes; SR uses one image per volume)",
        policy="never", urls=(), fname=None, size=None, size_note="not applicable", sha256=None, md5=None,
        content="", check="*", homepage="manga109.org",
        layout="one PNG per volume, as you prepared it",
        licence="academic use only, no redistribution, application form required (manga109.org terms; the "
                "Hugging Face copy hal-utokyo/Manga109 is gated) [sr-protocol.md §3.3].",
        source="sr-protocol.md §3.3",
        notes="Listed so its terms are visible; srlearn never fetches, vendors or redistributes it."),
]

#: name -> :class:`Dataset`, one of the package's registries (``srlearn list``). Names are
#: case-insensitive in :func:`get` and :func:`fetch`.
DATASETS = Registry("dataset", "datasets", help="public datasets: source, licence, checksum, policy")
for _d in _ENTRIES:
    DATASETS.register(_d.name, _d, policy=_d.policy)

_LOCAL: dict[str, Path] = {}


def list_datasets(policy: str | None = None) -> list[str]:
    """Names of the registered datasets, in registry order; ``policy`` keeps only one policy."""
    return [n for n, d in DATASETS.items() if policy is None or d.policy == policy]


def get(name: str) -> Dataset:
    """The entry called ``name`` (case-insensitive); ``ValueError`` listing the names if unknown."""
    if isinstance(name, Dataset):
        return name
    if not isinstance(name, str):
        raise TypeError(f"dataset name must be a string, got {type(name).__name__}")
    if name in DATASETS:
        return DATASETS[name]
    folded = {n.lower(): n for n in DATASETS}
    if name.lower() in folded:
        return DATASETS[folded[name.lower()]]
    close = difflib.get_close_matches(name, list(DATASETS), n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ValueError(f"unknown dataset {name!r}.{hint} Known: {', '.join(DATASETS)}")


def cache_dir() -> Path:
    """Where datasets live: ``$SRLEARN_DATA`` if set (read at each call), else ``pooch.os_cache("srlearn")``."""
    env = os.environ.get("SRLEARN_DATA", "").strip()
    if env:
        return Path(env).expanduser().resolve()
    import pooch

    return Path(pooch.os_cache("srlearn")).expanduser()


def register_local(name: str, folder) -> Path | None:
    """Use a local copy of dataset ``name`` (for this process): ``fetch(name)`` then returns ``folder``.

    ``folder`` is the folder ``fetch`` would return (e.g. the one holding ``0001.png`` for
    ``DIV2K_train_HR``, the one holding ``{id}_0.png`` for CUFED5). It must exist and match the entry's
    layout. ``folder=None`` forgets a registration. To make a copy permanent, place it at
    ``<cache_dir()>/<name>/`` (manual datasets) or point ``SRLEARN_DATA`` at a shared cache.
    """
    ds = get(name)
    if folder is None:
        return _LOCAL.pop(ds.name, None)
    path = Path(folder).expanduser().resolve()
    if not path.is_dir():
        raise ValueError(f"register_local({ds.name!r}, ...): {path} is not a folder")
    if not any(path.glob(ds.check)):
        raise ValueError(f"register_local({ds.name!r}, ...): no file matching {ds.check!r} in {path}; "
                         f"expected layout: {ds.layout}")
    _LOCAL[ds.name] = path
    return path


# ----------------------------------------------------------------------------------------------- checking
def _digests(path: Path, want_sha256: bool, want_md5: bool) -> dict:
    sha, md5 = hashlib.sha256() if want_sha256 else None, hashlib.md5() if want_md5 else None
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            if sha:
                sha.update(chunk)
            if md5:
                md5.update(chunk)
    return {"sha256": sha.hexdigest() if sha else None, "md5": md5.hexdigest() if md5 else None}


def verify_file(path, sha256: str | None = None, md5: str | None = None, size: int | None = None) -> dict:
    """Check ``path`` against a byte ``size`` and/or ``sha256``/``md5`` hex digests (one read for both).

    Returns ``{"size", "sha256", "md5"}`` as measured (a digest is ``None`` when not asked for). Raises
    ``ChecksumError`` naming expected and actual values on any mismatch (size is checked first: cheap),
    ``FileNotFoundError`` if the file is missing, ``ValueError`` when nothing is given to check against.
    """
    path = Path(path)
    if sha256 is None and md5 is None and size is None:
        raise ValueError("verify_file needs at least one of sha256=, md5=, size= to check against")
    for algo, value, n in (("sha256", sha256, 64), ("md5", md5, 32)):
        if value is not None and not (isinstance(value, str) and re.fullmatch(f"[0-9a-fA-F]{{{n}}}", value)):
            raise ValueError(f"{algo} must be a {n}-digit hex string, got {value!r}")
    if not path.is_file():
        raise FileNotFoundError(f"no file at {path}")
    actual = path.stat().st_size
    if size is not None and actual != int(size):
        raise ChecksumError(f"{path.name}: size is {actual:,} bytes, expected {int(size):,}")
    got = _digests(path, sha256 is not None, md5 is not None)
    for algo, value in (("sha256", sha256), ("md5", md5)):
        if value is not None and got[algo] != value.lower():
            raise ChecksumError(f"{path.name}: {algo} is {got[algo]}, expected {value.lower()}")
    return {"size": actual, **got}


def _looks_like_html(path: Path) -> bool:
    """An HTML page (a Google Drive interstitial, a login or error page) where an archive was expected."""
    with open(path, "rb") as fh:
        head = fh.read(4096)
    head = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return head.startswith((b"<!doctype html", b"<html")) or (head.startswith(b"<") and b"<html" in head)


def _instructions(ds: Dataset, root: Path) -> str:
    where = root / ds.name
    if ds.policy == "never":
        return (f"{ds.name} is never downloaded by srlearn: {ds.licence} Apply at {ds.homepage}, then either place "
                f"your copy in {where}/ or call srlearn.data.registry.register_local({ds.name!r}, folder).")
    if ds.policy == "manual":
        return (f"{ds.name} is only on Google Drive, which scripted downloads cannot pass; srlearn never fetches it. "
                f"Download it in a browser from {ds.urls[0]}, unzip it so that {where}/ (or a sub-folder of it) "
                f"holds the files - layout: {ds.layout} - or call "
                f"srlearn.data.registry.register_local({ds.name!r}, folder).")
    checks = ", ".join(f"{a}={v!r}" for a, v in (("sha256", ds.sha256), ("md5", ds.md5), ("size", ds.size)) if v)
    return (f"Download {ds.urls[0]} by hand (e.g. in a browser), check it with "
            f"srlearn.data.registry.verify_file(path, {checks or '...'}) and save it as {where / ds.fname}; "
            f"or extract it yourself and call srlearn.data.registry.register_local({ds.name!r}, folder) with "
            f"the folder that matches: {ds.layout}.")


# ---------------------------------------------------------------------------------------------- extraction
def _escapes(parts) -> bool:
    """True if a relative path (as parts) leaves its root at any point, e.g. ``a/../../x``."""
    depth = 0
    for p in parts:
        if p == "..":
            depth -= 1
            if depth < 0:
                return True
        elif p not in ("", "."):
            depth += 1
    return False


def _check_name(name: str, archive: Path) -> PurePosixPath:
    n = name.replace("\\", "/")
    if not n or n.startswith("/") or re.match(r"^[A-Za-z]:", n):
        raise ValueError(f"unsafe archive {archive.name}: member {name!r} has an absolute path; refusing to extract")
    p = PurePosixPath(n)
    if _escapes(p.parts):
        raise ValueError(f"unsafe archive {archive.name}: member {name!r} escapes the target folder ('..'); "
                         "refusing to extract")
    return p


def _check_tar(tf: tarfile.TarFile, archive: Path) -> None:
    for m in tf.getmembers():
        p = _check_name(m.name, archive)
        if m.issym():
            link = m.linkname.replace("\\", "/")
            if link.startswith("/") or re.match(r"^[A-Za-z]:", link) or _escapes(p.parent.parts + PurePosixPath(link).parts):
                raise ValueError(f"unsafe archive {archive.name}: symlink {m.name!r} -> {m.linkname!r} points "
                                 "outside the target folder; refusing to extract")
        elif m.islnk():
            try:
                _check_name(m.linkname, archive)
            except ValueError:
                raise ValueError(f"unsafe archive {archive.name}: hard link {m.name!r} -> {m.linkname!r} points "
                                 "outside the target folder; refusing to extract") from None
        elif not (m.isfile() or m.isdir()):
            raise ValueError(f"unsafe archive {archive.name}: member {m.name!r} is a device, FIFO or other special "
                             "file; refusing to extract")


def _check_zip(zf: zipfile.ZipFile, archive: Path) -> None:
    for info in zf.infolist():
        _check_name(info.filename, archive)
        kind = stat.S_IFMT(info.external_attr >> 16)
        if stat.S_ISLNK(kind):
            raise ValueError(f"unsafe archive {archive.name}: member {info.filename!r} is a symbolic link; zip "
                             "symlinks are not supported; refusing to extract")
        if kind and not (stat.S_ISREG(kind) or stat.S_ISDIR(kind)):
            raise ValueError(f"unsafe archive {archive.name}: member {info.filename!r} is a special file; refusing "
                             "to extract")


def _archive_kind(archive: Path) -> str:
    name = archive.name.lower()
    if name.endswith(".zip"):
        return "zip"
    if name.endswith((".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")):
        return "tar"
    if zipfile.is_zipfile(archive):
        return "zip"
    if tarfile.is_tarfile(archive):
        return "tar"
    raise ValueError(f"{archive} is neither a zip nor a tar archive")


def safe_extract(archive, target) -> Path:
    """Extract a zip or tar ``archive`` into the new folder ``target``, refusing anything unsafe.

    Every member is checked before anything is written: absolute paths, ``..`` escapes, symlinks or hard
    links pointing outside the target, device files and FIFOs are rejected with ``ValueError`` (zip
    symlinks are rejected outright). Tar members are then extracted with Python's ``"data"`` filter as a
    second line of defence (it also resolves links already on disk). Extraction goes into a temporary
    sibling folder, renamed to ``target`` only when complete: on any failure no partial tree is left.
    ``target`` must not exist (``FileExistsError``). Returns ``target``.
    """
    archive, target = Path(archive), Path(target)
    if not archive.is_file():
        raise FileNotFoundError(f"no archive at {archive}")
    if target.exists():
        raise FileExistsError(f"{target} already exists; remove it or extract elsewhere")
    kind = _archive_kind(archive)
    target.parent.mkdir(parents=True, exist_ok=True)
    _files.remove_orphans(target.parent, target.name, ".partial")
    tmp = Path(tempfile.mkdtemp(prefix=_files.temp_prefix(target.name), suffix=".partial", dir=target.parent))
    try:
        if kind == "zip":
            with zipfile.ZipFile(archive) as zf:
                _check_zip(zf, archive)
                zf.extractall(tmp)
        else:
            with tarfile.open(archive) as tf:
                _check_tar(tf, archive)
                if hasattr(tarfile, "data_filter"):
                    try:
                        tf.extractall(tmp, filter="data")
                    except tarfile.FilterError as err:  # e.g. a link that escapes through another link
                        raise ValueError(f"unsafe archive {archive.name}: {err}; refusing to extract") from err
                else:  # Python without PEP 706: the checks above are the only line of defence
                    tf.extractall(tmp)
        _files.normal_mode(tmp)   # mkdtemp made it 0700
        os.rename(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


# ------------------------------------------------------------------------------------------------ fetching
def _file_downloader(url: str, output_file, pooch=None, check_only: bool = False):
    """A pooch-style downloader for ``file://`` URLs (local mirrors, tests)."""
    src = Path(urllib.request.url2pathname(urllib.parse.urlparse(url).path))
    if check_only:
        return src.is_file()
    shutil.copyfile(src, output_file)


def _downloader(url: str, progressbar: bool):
    """The pooch downloader for ``url`` (http/https/ftp), or :func:`_file_downloader` for ``file://``."""
    scheme = urllib.parse.urlparse(url).scheme.lower()
    if scheme == "file":
        return _file_downloader
    import pooch

    if scheme in ("http", "https"):
        return pooch.HTTPDownloader(progressbar=progressbar)
    if scheme == "ftp":
        return pooch.FTPDownloader(progressbar=progressbar)
    raise ValueError(f"unsupported URL scheme in {url!r}; use https://, ftp:// or file://")


def _verify_archive(ds: Dataset, path: Path) -> None:
    if _looks_like_html(path):
        raise ChecksumError(f"{ds.name}: the server sent an HTML page (an error page or a Google Drive "
                            f"interstitial), not the archive.")
    if ds.size is not None or ds.verified:
        verify_file(path, sha256=ds.sha256, md5=ds.md5, size=ds.size)


def _download(ds: Dataset, dest: Path, progressbar: bool) -> None:
    """Download to a temporary name beside ``dest``, verify, then rename into place; clean up on failure."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    _files.remove_orphans(dest.parent, dest.name, ".part")
    errors, network = [], []
    for url in ds.urls:
        fd, tmp_name = tempfile.mkstemp(prefix=_files.temp_prefix(dest.name), suffix=".part", dir=dest.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            log.info("downloading %s to %s", url, dest)
            try:
                _downloader(url, progressbar)(url, str(tmp), None)
            except (OSError, *ftplib.all_errors) as err:   # requests' errors are OSErrors too
                if isinstance(err, OSError) and err.errno == errno.ENOSPC:
                    raise
                tmp.unlink(missing_ok=True)
                network.append(f"{url}: {type(err).__name__}: {err}")
                continue
            _verify_archive(ds, tmp)
            _files.normal_mode(tmp)
            os.replace(tmp, dest)
            return
        except ChecksumError as err:
            tmp.unlink(missing_ok=True)
            errors.append(f"{url}: {err}")
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    if network and not errors:
        raise DownloadError(f"{ds.name}: the download failed (network: refused or dropped connection, "
                            f"missing file or no network); nothing was kept. " + " | ".join(network) + ". "
                            + _instructions(ds, dest.parent.parent))
    raise ChecksumError(f"{ds.name}: no URL gave a file that verifies; nothing was kept. "
                        + " | ".join(errors + network) + " " + _instructions(ds, dest.parent.parent))


def _content(ds: Dataset, root: Path) -> Path:
    path = root / ds.content if ds.content else root
    if not path.is_dir() or not any(path.glob(ds.check)):
        raise FileNotFoundError(f"{ds.name}: expected {ds.check!r} under {path} (layout: {ds.layout}); the archive "
                                f"layout differs - remove {root} and fetch again, or use register_local")
    return path


def _find_manual(ds: Dataset, folder: Path) -> Path | None:
    """The folder itself or a direct sub-folder of it that matches the entry's ``check`` glob."""
    if not folder.is_dir():
        return None
    for cand in [folder, *sorted(p for p in folder.iterdir() if p.is_dir())]:
        if any(cand.glob(ds.check)):
            return cand
    return None


def fetch(name: str, *, progressbar: bool = True, allow_unverified: bool = False) -> Path:
    """Path of the folder holding dataset ``name``, downloading and extracting it if needed.

    Order: a copy registered with :func:`register_local`; for "manual"/"never" entries, a copy placed in
    ``<cache_dir()>/<name>/`` (else ``ManualDownloadRequired`` with instructions - no network is touched);
    for "download" entries, the extracted tree in the cache, else the cached archive if it verifies (a
    corrupt one is deleted and downloaded again), else a download with pooch to a temporary name, verified
    (not HTML, size, SHA-256/MD5) and renamed into place, then :func:`safe_extract`. An entry without any
    checksum is refused unless ``allow_unverified=True``. On a failed verification the partial file is
    deleted and ``ChecksumError`` explains how to download by hand.
    """
    ds = get(name)
    if ds.name in _LOCAL:
        return _LOCAL[ds.name]
    root = cache_dir()
    folder = root / ds.name
    if ds.policy in ("manual", "never"):
        found = _find_manual(ds, folder)
        if found is None:
            raise ManualDownloadRequired(_instructions(ds, root))
        return found
    if not ds.verified and not allow_unverified:
        raise ValueError(f"{ds.name}: no checksum is recorded, so a download could not be verified. Pass "
                         f"allow_unverified=True to download it anyway, or " + _instructions(ds, root))
    extracted = folder / "extracted"
    _files.remove_orphans(folder, ds.fname, ".part")        # left by a killed download or extraction
    _files.remove_orphans(folder, extracted.name, ".partial")
    if extracted.is_dir():  # only ever renamed into place complete
        return _content(ds, extracted)
    archive = folder / ds.fname
    if archive.is_file():
        try:
            _verify_archive(ds, archive)
            log.info("%s: reusing verified %s", ds.name, archive)
        except ChecksumError as err:
            log.warning("%s: cached archive fails verification (%s); downloading it again", ds.name, err)
            archive.unlink()
    if not archive.is_file():
        _download(ds, archive, progressbar)
    try:
        safe_extract(archive, extracted)
    except FileExistsError:
        if not extracted.is_dir():  # a concurrent fetch finished first: use its tree
            raise
    return _content(ds, extracted)


def local_copy(name: str) -> Path | None:
    """The folder :func:`fetch` would return for ``name`` if it is already on this machine, else None.

    Never touches the network and never extracts: a :func:`register_local` copy, a manual copy in
    ``<cache>/<name>/``, or an already extracted download. Without ``$SRLEARN_DATA`` and without pooch (a
    bare GPU machine) there is no cache to look in: None.
    """
    ds = get(name)
    if ds.name in _LOCAL:
        return _LOCAL[ds.name]
    try:
        folder = cache_dir() / ds.name
    except ImportError:
        return None
    if ds.policy in ("manual", "never"):
        return _find_manual(ds, folder)
    extracted = folder / "extracted"
    path = extracted / ds.content if ds.content else extracted
    return path if path.is_dir() and any(path.glob(ds.check)) else None


# ------------------------------------------------------------------------------------------------- layouts
def _png_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as im:  # reads the header only
        return im.size  # (width, height)


def pair_div2k(hr_dir, lr_dir, scale: int, check_sizes: bool = True) -> list[tuple[Path, Path]]:
    """Pair ``hr_dir/<stem>.png`` with ``lr_dir/<stem>x<scale>.png``; sorted by stem.

    The DIV2K naming (``DIV2K_valid_HR/0801.png`` <-> ``DIV2K_valid_LR_bicubic/X4/0801x4.png``) and EDSR's
    benchmark.tar naming (``Set5/HR/baby.png`` <-> ``Set5/LR_bicubic/X4/babyx4.png``) [sr-protocol.md §3.1,
    §3.3]. ``lr_dir`` may be the ``X<scale>`` folder or its parent. Every HR must have its LR and vice
    versa (``ValueError`` lists what is missing). With ``check_sizes`` (PNG headers only), each HR must
    mod-crop to exactly ``scale`` × its LR: ``W_lr*s <= W_hr < (W_lr+1)*s``, same for heights
    (sr-protocol.md §8.4; crop, never resize, the HR).
    """
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    hr_dir, lr_dir = Path(hr_dir), Path(lr_dir)
    for what, d in (("hr_dir", hr_dir), ("lr_dir", lr_dir)):
        if not d.is_dir():
            raise ValueError(f"{what} {d} is not a folder")
    if (lr_dir / f"X{scale}").is_dir():
        lr_dir = lr_dir / f"X{scale}"
    hrs = {p.stem: p for p in hr_dir.iterdir() if p.suffix.lower() == _PNG}
    suffix = f"x{scale}"
    lrs = {p.stem[:-len(suffix)]: p for p in lr_dir.iterdir()
           if p.suffix.lower() == _PNG and p.stem.endswith(suffix)}
    if not hrs:
        raise ValueError(f"no PNG images in {hr_dir}")
    missing_lr, missing_hr = sorted(set(hrs) - set(lrs)), sorted(set(lrs) - set(hrs))
    if missing_lr or missing_hr:
        raise ValueError(f"HR/LR do not pair at x{scale}: {len(missing_lr)} HR without <stem>{suffix}.png in "
                         f"{lr_dir} (e.g. {missing_lr[:3]}), {len(missing_hr)} LR without HR in {hr_dir} "
                         f"(e.g. {missing_hr[:3]})")
    pairs = [(hrs[k], lrs[k]) for k in sorted(hrs)]
    if check_sizes:
        for h, l in pairs:
            (wh, hh), (wl, hl) = _png_size(h), _png_size(l)
            if not (wl * scale <= wh < (wl + 1) * scale and hl * scale <= hh < (hl + 1) * scale):
                raise ValueError(f"{h.name} is {wh}x{hh} but {l.name} is {wl}x{hl}: not a x{scale} pair "
                                 f"(expected the HR to mod-crop to {wl * scale}x{hl * scale})")
    return pairs


def pair_cufed5(folder, n_refs: int = 5) -> list[tuple[Path, list[Path]]]:
    """CUFED5 groups: ``[(folder/{id}_0.png, [folder/{id}_1.png, ..., folder/{id}_5.png]), ...]`` by id.

    ``{id}_0`` is the HR input; ``{id}_1`` ... ``{id}_5`` are its references by decreasing similarity, and
    the standard evaluation pairs ``{id}_0`` with ``{id}_1`` [C2-Matching ``CUFED5_pairs.txt``;
    sr-protocol.md §3.4]. Note the degradation differs from SISR benchmarks: RefSR code (C2-Matching) makes
    the LR input and the down-up-sampled reference with PIL bicubic, not MATLAB [sr-protocol.md §1.6], so
    label CUFED5 numbers ``protocol(4, degradation="PIL-BI")``. A group missing a reference raises
    ``ValueError``.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a folder")
    if isinstance(n_refs, bool) or not isinstance(n_refs, int) or n_refs < 1:
        raise ValueError(f"n_refs must be a positive integer, got {n_refs!r}")
    ids = sorted(p.name[:-len("_0.png")] for p in folder.glob("*_0.png"))
    if not ids:
        raise ValueError(f"no {{id}}_0.png in {folder}; expected CUFED5's layout {DATASETS['CUFED5'].layout}")
    groups = []
    for i in ids:
        refs = [folder / f"{i}_{k}.png" for k in range(1, n_refs + 1)]
        missing = [r.name for r in refs if not r.is_file()]
        if missing:
            raise ValueError(f"CUFED5 group {i!r} in {folder} lacks {missing}")
        groups.append((folder / f"{i}_0.png", refs))
    return groups
