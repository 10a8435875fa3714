"""Downloads for machines that are online: the SD-2.1-base folder from a Hugging Face Hub repository, the adapter
file from a URL. Nothing in the app needs the network; these are a convenience for getting PiSA-SR once.

Adapter file (:func:`download_file`): plain HTTP(S) with ``urllib``. Bytes go to ``<name>.part``; an interrupted
transfer (dropped connection, timeout, crash, cancel) resumes from the partial with a ``Range`` request, guarded by
``If-Range`` so a file that changed on the server restarts instead of mixing two versions. The sha256 is computed
while the bytes arrive (and over the partial when resuming); a wrong checksum deletes the partial and nothing is
left under the final name. A lock file stops two processes from appending to one partial.

Base model (:func:`download_base`): a thin wrapper over ``huggingface_hub.snapshot_download`` into a folder of our
own. huggingface_hub resumes interrupted files itself and checks what it downloads; ``allow_patterns`` limits the
download to what the engine loads (about 2.6 GB of the repository's 15 GB). Progress and cancel go through its
``tqdm_class`` hook, so cancel takes effect at the next progress report. The Hub cannot be reached from the test
machine, so this part is kept small and only its glue is tested (with a stand-in for ``snapshot_download``).

:func:`download_model` does both and imports the result into the store, moving (not copying) the downloaded files.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import io
import json
import logging
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from filelock import FileLock, Timeout

from .. import __version__, durable
from ..engine.backends.pisa.layout import ADAPTER_SUFFIXES, check_base_folder
from ..engine.control import Control
from ..plain_errors import plain_reason
from .errors import ChecksumMismatch, DownloadError, OperationCancelled
from .files import CHUNK, check_cancel
from .pisa_import import import_pisa
from .registry import DOWNLOADS, ModelStore, slugify

if TYPE_CHECKING:
    from .registry import ModelEntry

log = logging.getLogger(__name__)

#: The official Stable Diffusion 2.1-base repository (diffusers layout). Configurable: mirrors work the same way.
BASE_REPO = "stabilityai/stable-diffusion-2-1-base"
#: What the engine loads from the base repository: configs, tokenizer, and the plain safetensors weights only
#: (not the 5 GB .ckpt, the fp16 and .bin duplicates or the flax weights).
BASE_PATTERNS = (
    "model_index.json",
    "scheduler/*",
    "tokenizer/*",
    "text_encoder/config.json",
    "text_encoder/model.safetensors",
    "unet/config.json",
    "unet/diffusion_pytorch_model.safetensors",
    "vae/config.json",
    "vae/diffusion_pytorch_model.safetensors",
)
USER_AGENT = f"desktop-sr/{__version__} (+model manager)"
READ_CHUNK = 256 << 10  # progress and cancel granularity of a transfer
_RETRY_HTTP = {408, 425, 429, 500, 502, 503, 504}
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")


class _Retry(Exception):
    """A transient failure: try again, resuming from the partial file."""


@dataclass(frozen=True)
class DownloadResult:
    path: Path
    sha256: str
    size: int
    resumed_from: int  # bytes already on disk when this call started (0 for a fresh download)
    attempts: int  # HTTP requests made (1 when nothing went wrong)


def part_path(dest: Path) -> Path:
    """Where the bytes of ``dest`` collect until they are complete and checked."""
    return dest.with_name(dest.name + ".part")


def normalise_sha256(text: str | None) -> str | None:
    """Lower-case hex, or None for "no checksum given"; anything else is a usage error worth stopping for."""
    if text is None or not text.strip():
        return None
    value = text.strip().lower().removeprefix("sha256:")
    if not _SHA_RE.match(value):
        raise DownloadError(Path(text.strip()), "not a sha256 checksum (expected 64 hexadecimal digits)")
    return value


class _PartHasher:
    """sha256 of the partial file, kept in step with the bytes appended, so finishing needs no second read."""

    def __init__(self) -> None:
        self.h = hashlib.sha256()
        self.n = 0

    def sync(self, part: Path, control: Control | None) -> None:
        """Hash what is on disk beyond what has been hashed (a partial from an earlier run, or a retry)."""
        size = part.stat().st_size if part.exists() else 0
        if size < self.n:
            self.h, self.n = hashlib.sha256(), 0
        if size == self.n:
            return
        with open(part, "rb") as fh:
            fh.seek(self.n)
            while chunk := fh.read(CHUNK):
                check_cancel(control, part)
                self.h.update(chunk)
                self.n += len(chunk)

    def update(self, data: bytes) -> None:
        self.h.update(data)
        self.n += len(data)

    def reset(self) -> None:
        self.h, self.n = hashlib.sha256(), 0


def _total_from_content_range(value: str | None) -> tuple[int | None, int | None]:
    """(start, total) from ``bytes 100-199/1234`` or ``bytes */1234``."""
    m = re.match(r"bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)", value or "")
    if not m:
        return None, None
    start = int(m.group(1)) if m.group(1) is not None else None
    total = int(m.group(2)) if m.group(2) != "*" else None
    return start, total


def download_file(
    url: str,
    dest: str | Path,
    *,
    sha256: str | None = None,
    control: Control | None = None,
    timeout: float = 30.0,
    retries: int = 5,
    retry_wait: float = 2.0,
    keep_partial: bool = True,
) -> DownloadResult:
    """Download ``url`` to ``dest``, resuming from ``dest.part`` if an earlier attempt left one.

    Transient failures (connection reset or dropped mid-body, timeouts, HTTP 5xx/429) are retried up to
    ``retries`` times in a row, each time resuming where the partial ends; a retry that made progress resets the
    count. On a checksum mismatch the partial is deleted and :class:`ChecksumMismatch` raised. On cancel
    (:class:`OperationCancelled`) the partial is kept for the next call unless ``keep_partial`` is False; the final
    name is only ever created by renaming a complete, checked file.
    """
    dest = Path(dest)
    expected = normalise_sha256(sha256)
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise DownloadError(Path(url), "only http:// and https:// addresses can be downloaded")
    if dest.is_file() and expected:
        h = _PartHasher()
        h.sync(dest, control)
        if h.h.hexdigest() == expected:
            return DownloadResult(dest, expected, h.n, h.n, 0)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part, meta = part_path(dest), dest.with_name(dest.name + ".part.json")
    lock = FileLock(str(part) + ".lock", timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise DownloadError(dest, "is already being downloaded by another desktop-sr") from None
    try:
        hasher = _PartHasher()
        if part.exists() and _read_meta(meta).get("url") != url:
            part.unlink()  # a partial of some other address: never append to it
        resumed_from = part.stat().st_size if part.exists() else 0
        failures = attempts = 0
        while True:
            check_cancel(control, dest)
            attempts += 1
            before = part.stat().st_size if part.exists() else 0
            try:
                _attempt(url, part, meta, hasher, control, timeout)
                break
            except _Retry as exc:
                now = part.stat().st_size if part.exists() else 0
                failures = 1 if now > before else failures + 1
                if failures > retries:
                    raise DownloadError(dest, f"the download keeps failing ({exc}); run it again to resume") from exc
                log.info("download of %s interrupted (%s); resuming from byte %d", url, exc, now)
                if control is not None and control.sleep(retry_wait * failures):
                    raise OperationCancelled(dest) from exc
                if control is None:
                    time.sleep(retry_wait * failures)
        digest = hasher.h.hexdigest()
        size = hasher.n
        if expected and digest != expected:
            part.unlink(missing_ok=True)
            meta.unlink(missing_ok=True)
            raise ChecksumMismatch(dest, expected, digest)
        os.replace(part, dest)
        meta.unlink(missing_ok=True)
        return DownloadResult(dest, digest, size, resumed_from, attempts)
    except OperationCancelled:
        if not keep_partial:
            part.unlink(missing_ok=True)
            meta.unlink(missing_ok=True)
        raise
    finally:
        lock.release()
        with contextlib.suppress(OSError):
            Path(str(part) + ".lock").unlink()


def _read_meta(meta: Path) -> dict[str, object]:
    try:
        raw = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return {}
    return raw if isinstance(raw, dict) else {}


def _attempt(
    url: str,
    part: Path,
    meta: Path,
    hasher: _PartHasher,
    control: Control | None,
    timeout: float,
) -> None:
    """One HTTP request: append to the partial from where it ends. Raises :class:`_Retry` for transient trouble."""
    hasher.sync(part, control)
    offset = hasher.n
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    saved = _read_meta(meta)
    if offset:
        headers["Range"] = f"bytes={offset}-"
        validator = saved.get("etag") if not str(saved.get("etag") or "").startswith("W/") else None
        validator = validator or saved.get("last_modified")
        if validator:
            headers["If-Range"] = str(validator)
    request = urllib.request.Request(url, headers=headers)
    try:
        resp = urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 - the scheme is checked by the caller
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:
            _start, total = _total_from_content_range(exc.headers.get("Content-Range"))
            if total == offset:
                return  # the partial already holds every byte (interrupted just before the rename)
            part.unlink(missing_ok=True)  # the server's file is shorter than our partial: start over
            hasher.reset()
            raise _Retry("the server refused to resume; starting over") from exc
        if exc.code in _RETRY_HTTP:
            raise _Retry(f"HTTP {exc.code} {exc.reason}") from exc
        raise DownloadError(Path(url), f"the server answered HTTP {exc.code} {exc.reason}") from exc
    except urllib.error.URLError as exc:
        raise _Retry(f"cannot connect: {plain_reason(exc)}") from exc
    except (TimeoutError, ConnectionError, http.client.HTTPException) as exc:
        raise _Retry(plain_reason(exc)) from exc
    with resp:
        status = resp.status
        if status == 206 and offset:
            start, total = _total_from_content_range(resp.headers.get("Content-Range"))
            if start != offset:
                part.unlink(missing_ok=True)
                hasher.reset()
                raise _Retry(f"the server resumed at byte {start}, not {offset}; starting over")
        elif status == 200:
            if offset:
                log.info("%s: the server sent the whole file instead of resuming; starting over", url)
            part.unlink(missing_ok=True)
            hasher.reset()
            offset = 0
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        else:
            raise DownloadError(Path(url), f"unexpected answer from the server: HTTP {status}")
        if offset == 0:
            info = {"url": url, "etag": resp.headers.get("ETag"), "last_modified": resp.headers.get("Last-Modified")}
            durable.replace_with(meta, json.dumps(info))  # a kill mid-write must not leave a torn resume record
        label = f"Downloading {part.name.removesuffix('.part')}"
        done = offset
        try:
            with open(part, "ab") as out:
                while True:
                    check_cancel(control, part)
                    chunk = resp.read(READ_CHUNK)
                    if not chunk:
                        break
                    out.write(chunk)
                    hasher.update(chunk)
                    done += len(chunk)
                    if control:
                        control.report(done, total or 0, label)
                out.flush()
                os.fsync(out.fileno())
        except (TimeoutError, ConnectionError, http.client.HTTPException) as exc:
            raise _Retry(f"the connection dropped at byte {done}: {type(exc).__name__}") from exc
        if total is not None and done < total:
            raise _Retry(f"the connection closed at byte {done} of {total}")
        if total is not None and done > total:
            part.unlink(missing_ok=True)
            hasher.reset()
            raise DownloadError(Path(url), f"the server sent {done} bytes but announced {total}")


def _tqdm_relay(control: Control | None, label: str) -> type:
    """A tqdm class for huggingface_hub that reports byte progress to ``control`` and raises on cancel.

    huggingface_hub creates its bars from the class it is given (``tqdm_class``); recent versions report bytes
    through it, older ones the number of files. Output goes nowhere: the caller shows the progress.
    """
    from tqdm.auto import tqdm

    class _Relay(tqdm):  # type: ignore[misc,valid-type]
        def __init__(self, *args: object, **kwargs: object) -> None:
            kwargs.pop("name", None)
            kwargs["file"] = io.StringIO()
            kwargs["disable"] = False
            super().__init__(*args, **kwargs)
            check_cancel(control, Path(label))

        def update(self, n: float | None = 1) -> bool | None:
            check_cancel(control, Path(label))
            result = super().update(n)
            if control is not None:
                unit = "" if self.unit == "B" else f" ({self.unit})"
                control.report(int(self.n), int(self.total or 0), f"{label}{unit}")
            return result

    return _Relay


def download_base(
    dest_dir: str | Path,
    repo_id: str = BASE_REPO,
    *,
    revision: str | None = None,
    allow_patterns: tuple[str, ...] | list[str] = BASE_PATTERNS,
    token: str | None = None,
    control: Control | None = None,
) -> Path:
    """Fetch the SD-2.1-base files from the Hub into ``dest_dir`` (resumable: run again after an interruption).

    ``token`` is only needed for gated or private repositories; None uses the login of ``huggingface-cli``.
    """
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:  # a declared dependency, but the app must still say something useful without it
        raise DownloadError(Path(repo_id), f"huggingface_hub is not installed ({exc})") from exc
    dest = Path(dest_dir)
    created = not dest.exists()
    dest.mkdir(parents=True, exist_ok=True)
    try:
        path = snapshot_download(
            repo_id=repo_id,
            revision=revision,
            local_dir=str(dest),
            allow_patterns=list(allow_patterns),
            token=token,
            tqdm_class=_tqdm_relay(control, f"Downloading {repo_id}"),
        )
    except OperationCancelled:
        raise
    except Exception as exc:  # noqa: BLE001 - network, auth, offline mode, missing repo: one clear message for each
        if created:  # nothing arrived: leave no empty folder that looks like a base to the next run
            with contextlib.suppress(OSError):
                dest.rmdir()
        raise DownloadError(Path(repo_id), f"cannot download from the Hugging Face Hub: {plain_reason(exc)}") from exc
    check_cancel(control, dest)
    check_base_folder(Path(path))
    return Path(path)


def adapter_name_from_url(url: str) -> str:
    """The file name at the end of ``url``, checked to be an adapter type the app reads."""
    name = Path(urllib.parse.unquote(urllib.parse.urlsplit(url).path)).name
    name = re.sub(r"[^A-Za-z0-9._-]", "_", name)
    if Path(name).suffix.lower() not in ADAPTER_SUFFIXES:
        raise DownloadError(
            Path(url), "the address must end in a .pkl or .safetensors file name (give the file name explicitly)"
        )
    return name


def manifest_url(url: str) -> str:
    """The ``.json`` manifest that belongs beside an app-format ``.safetensors`` adapter at ``url``."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path=parts.path[: -len(".safetensors")] + ".json"))


def download_model(
    store: ModelStore,
    adapter_url: str,
    *,
    adapter_sha256: str | None = None,
    adapter_name: str = "",
    repo_id: str = BASE_REPO,
    revision: str | None = None,
    base_dir: str | Path | None = None,
    base_mode: str = "copy",
    name: str = "",
    token: str | None = None,
    make_default: bool = False,
    validate: bool = True,
    control: Control | None = None,
) -> ModelEntry:
    """Download the adapter (and the base model, unless a local ``base_dir`` is given) and import them.

    Downloads collect under ``<models dir>/.downloads/`` so an interrupted run resumes; once complete they are moved
    into the model's folder (no second copy). A local ``base_dir`` is imported with ``base_mode`` (``copy`` or
    ``reference``).
    """
    normalise_sha256(adapter_sha256)  # a malformed checksum stops us before any transfer
    file_name = adapter_name or adapter_name_from_url(adapter_url)
    if Path(file_name).suffix.lower() not in ADAPTER_SUFFIXES:
        raise DownloadError(Path(file_name), "the adapter file name must end in .pkl or .safetensors")
    downloads = store.root / DOWNLOADS
    adapter_dir = downloads / "adapters" / slugify(Path(file_name).stem)
    adapter = download_file(adapter_url, adapter_dir / file_name, sha256=adapter_sha256, control=control).path
    if adapter.suffix.lower() == ".safetensors":
        download_file(manifest_url(adapter_url), adapter.with_suffix(".json"), control=control)
    if base_dir is None:
        slug = slugify(repo_id.replace("/", "--") + (f"@{revision}" if revision else ""))
        base = download_base(downloads / "base" / slug, repo_id, revision=revision, token=token, control=control)
        mode = "move"
    else:
        base, mode = Path(base_dir), base_mode
    source = {"adapter_url": adapter_url, **({"repo_id": repo_id} if base_dir is None else {})}
    if revision and base_dir is None:
        source["revision"] = revision
    entry = import_pisa(
        store,
        base,
        adapter,
        name=name or Path(file_name).stem,
        mode=mode,
        adapter_mode="move",
        validate=validate,
        make_default=make_default,
        control=control,
        source=source,
    )
    with contextlib.suppress(OSError):
        adapter_dir.rmdir()
    return entry
