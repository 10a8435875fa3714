"""The adapter downloader against a local HTTP server on 127.0.0.1 (started here, with Range support written here):
range requests, a transfer dropped mid-body that resumes from the partial, a wrong checksum rejected with the
partial removed, cancel leaving no final file. The Hub download is tested only through its glue (no network)."""

from __future__ import annotations

import hashlib
import http.server
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from desktop_sr.engine.control import Control
from desktop_sr.models import ChecksumMismatch, DownloadError, ModelStore, OperationCancelled
from desktop_sr.models import download as dl

PAYLOAD = os.urandom(2_000_000)  # several read chunks
SHA = hashlib.sha256(PAYLOAD).hexdigest()


@dataclass
class ServerState:
    files: dict[str, bytes] = field(default_factory=lambda: {"/adapter.pkl": PAYLOAD})
    requests: list[dict[str, str | None]] = field(default_factory=list)
    drop_after: list[int] = field(default_factory=list)  # per request, in order: drop the connection after N bytes
    honour_range: bool = True
    fail_status: list[int] = field(default_factory=list)  # per request, in order: answer with this HTTP status


class RangeHandler(http.server.BaseHTTPRequestHandler):
    """GET with single ``bytes=N-`` / ``bytes=N-M`` ranges (206, Content-Range, 416), ETag, and injected faults."""

    state: ServerState
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        st = self.state
        st.requests.append(
            {"path": self.path, "range": self.headers.get("Range"), "if-range": self.headers.get("If-Range")}
        )
        if st.fail_status:
            code = st.fail_status.pop(0)
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = st.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        etag = '"' + hashlib.md5(data).hexdigest() + '"'
        start, end = 0, len(data) - 1
        rng = self.headers.get("Range")
        partial = False
        if rng and st.honour_range:
            m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng)
            assert m, rng
            start = int(m.group(1))
            end = int(m.group(2)) if m.group(2) else len(data) - 1
            if_range = self.headers.get("If-Range")
            if if_range and if_range != etag:
                start, end = 0, len(data) - 1  # changed since: send the whole new file
            elif start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            else:
                partial = True
        body = data[start : end + 1]
        self.send_response(206 if partial else 200)
        if partial:
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", etag)
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        drop = st.drop_after.pop(0) if st.drop_after else None
        if drop is not None:
            self.wfile.write(body[:drop])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)  # the client sees the body end early
            return
        self.wfile.write(body)


@pytest.fixture
def server() -> Iterator[tuple[str, ServerState]]:
    state = ServerState()
    handler = type("Handler", (RangeHandler,), {"state": state})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", state
    finally:
        httpd.shutdown()
        httpd.server_close()


def fetch(url: str, dest: Path, **kw: object) -> dl.DownloadResult:
    kw.setdefault("retry_wait", 0.0)
    kw.setdefault("timeout", 10.0)
    return dl.download_file(url, dest, **kw)  # type: ignore[arg-type]


def test_plain_download_checks_the_sha256_and_reports_progress(server, tmp_path):
    base, state = server
    seen: list[tuple[int, int]] = []
    res = fetch(
        f"{base}/adapter.pkl",
        tmp_path / "a.pkl",
        sha256=SHA.upper(),
        control=Control(lambda d, t, _l: seen.append((d, t))),
    )
    assert (tmp_path / "a.pkl").read_bytes() == PAYLOAD
    assert res.sha256 == SHA and res.size == len(PAYLOAD) and res.resumed_from == 0 and res.attempts == 1
    assert not list(tmp_path.glob("*.part*"))
    assert seen[-1] == (len(PAYLOAD), len(PAYLOAD)) and all(
        a <= b for (a, _), (b, _) in zip(seen, seen[1:], strict=False)
    )
    assert state.requests == [{"path": "/adapter.pkl", "range": None, "if-range": None}]


def test_a_dropped_connection_resumes_from_the_partial_with_a_range_request(server, tmp_path):
    base, state = server
    state.drop_after = [600_000]
    res = fetch(f"{base}/adapter.pkl", tmp_path / "a.pkl", sha256=SHA)
    assert (tmp_path / "a.pkl").read_bytes() == PAYLOAD and res.sha256 == SHA
    assert res.attempts == 2
    assert state.requests[0]["range"] is None
    resumed_at = int(state.requests[1]["range"].removeprefix("bytes=").rstrip("-"))  # type: ignore[union-attr]
    assert 0 < resumed_at <= 600_000  # only what was missing was asked for
    assert state.requests[1]["if-range"]  # guarded: a changed file would restart, not mix
    assert not (tmp_path / "a.pkl.part").exists()


def test_a_partial_left_by_an_earlier_run_is_resumed(server, tmp_path):
    base, state = server
    dest = tmp_path / "a.pkl"
    state.drop_after = [700_000]
    with pytest.raises(DownloadError, match="keeps failing"):
        fetch(f"{base}/adapter.pkl", dest, sha256=SHA, retries=0)  # gives up: like a crash mid-download
    part = dl.part_path(dest)
    assert part.is_file() and 0 < part.stat().st_size <= 700_000 and not dest.exists()
    kept = part.stat().st_size
    assert part.read_bytes() == PAYLOAD[:kept]
    res = fetch(f"{base}/adapter.pkl", dest, sha256=SHA)  # a new call (a new run of the app) resumes
    assert res.resumed_from == kept and res.attempts == 1
    assert state.requests[-1]["range"] == f"bytes={kept}-"
    assert dest.read_bytes() == PAYLOAD and not part.exists()


def test_a_wrong_checksum_is_rejected_and_the_partial_removed(server, tmp_path):
    base, _state = server
    dest = tmp_path / "a.pkl"
    with pytest.raises(ChecksumMismatch) as err:
        fetch(f"{base}/adapter.pkl", dest, sha256="0" * 64)
    assert err.value.actual == SHA and "a.pkl" in str(err.value)
    assert not dest.exists() and not dl.part_path(dest).exists()
    assert not list(tmp_path.iterdir())  # no partial, no metadata, no lock file


def test_a_checksum_mismatch_after_a_resume_is_rejected_too(server, tmp_path):
    """A partial whose first bytes are wrong (e.g. a file that changed on a server without ETags) is caught."""
    base, state = server
    dest = tmp_path / "a.pkl"
    part = dl.part_path(dest)
    part.write_bytes(b"\x00" * 300_000)
    (tmp_path / "a.pkl.part.json").write_text(f'{{"url": "{base}/adapter.pkl"}}')
    with pytest.raises(ChecksumMismatch):
        fetch(f"{base}/adapter.pkl", dest, sha256=SHA)
    assert state.requests[0]["range"] == "bytes=300000-"
    assert not dest.exists() and not part.exists()


def test_cancel_leaves_no_final_file_and_the_partial_resumes_later(server, tmp_path):
    base, state = server
    dest = tmp_path / "a.pkl"

    def progress(done: int, _total: int, _label: str) -> None:
        if done >= 600_000:
            control.cancel()

    control = Control(progress)
    with pytest.raises(OperationCancelled):
        fetch(f"{base}/adapter.pkl", dest, sha256=SHA, control=control)
    assert not dest.exists()
    kept = dl.part_path(dest).stat().st_size
    assert 600_000 <= kept < len(PAYLOAD)
    res = fetch(f"{base}/adapter.pkl", dest, sha256=SHA)
    assert res.resumed_from == kept and dest.read_bytes() == PAYLOAD
    cancelled = Control()
    cancelled.cancel()
    dest2 = tmp_path / "b.pkl"
    with pytest.raises(OperationCancelled):
        fetch(f"{base}/adapter.pkl", dest2, control=cancelled, keep_partial=False)
    assert not dest2.exists() and not dl.part_path(dest2).exists()


def test_a_server_that_ignores_ranges_restarts_cleanly(server, tmp_path):
    base, state = server
    state.honour_range = False
    state.drop_after = [500_000]
    res = fetch(f"{base}/adapter.pkl", tmp_path / "a.pkl", sha256=SHA)
    assert res.attempts == 2 and (tmp_path / "a.pkl").read_bytes() == PAYLOAD  # not the partial + the whole file


def test_a_complete_partial_is_finished_without_downloading_again(server, tmp_path):
    base, state = server
    dest = tmp_path / "a.pkl"
    dl.part_path(dest).write_bytes(PAYLOAD)
    (tmp_path / "a.pkl.part.json").write_text(f'{{"url": "{base}/adapter.pkl"}}')
    res = fetch(f"{base}/adapter.pkl", dest, sha256=SHA)
    assert dest.read_bytes() == PAYLOAD and res.resumed_from == len(PAYLOAD)
    assert state.requests[0]["range"] == f"bytes={len(PAYLOAD)}-"  # answered 416: nothing was sent again


def test_transient_http_errors_are_retried_and_missing_files_reported(server, tmp_path):
    base, state = server
    state.fail_status = [503, 502]
    res = fetch(f"{base}/adapter.pkl", tmp_path / "a.pkl", sha256=SHA)
    assert res.attempts == 3
    with pytest.raises(DownloadError, match="HTTP 404"):
        fetch(f"{base}/nothing.pkl", tmp_path / "n.pkl")
    assert not (tmp_path / "n.pkl").exists() and not (tmp_path / "n.pkl.part").exists()
    with pytest.raises(DownloadError, match="sha256"):
        fetch(f"{base}/adapter.pkl", tmp_path / "c.pkl", sha256="abc")
    with pytest.raises(DownloadError, match="http"):
        fetch("file:///etc/passwd", tmp_path / "p.pkl")


def test_download_model_fetches_the_adapter_and_imports_it_with_a_local_base(server, tmp_path, tiny_model):
    base, state = server
    state.files["/weights/pisa_tiny.pkl"] = tiny_model["pkl"].read_bytes()
    sha = hashlib.sha256(tiny_model["pkl"].read_bytes()).hexdigest()
    store = ModelStore(tmp_path / "models")
    entry = dl.download_model(
        store, f"{base}/weights/pisa_tiny.pkl", adapter_sha256=sha, base_dir=tiny_model["base"], base_mode="reference"
    )
    assert entry.storage == {"base": "reference", "adapter": "copy"}
    assert store.role_path(entry, "adapter").read_bytes() == tiny_model["pkl"].read_bytes()
    assert store.verify(entry.id).ok
    assert entry.source["adapter_url"].endswith("/weights/pisa_tiny.pkl")
    assert not list((store.root / ".downloads").rglob("*.pkl*"))  # moved in, not left behind


def test_download_base_passes_patterns_and_relays_progress_and_cancel(monkeypatch, tmp_path, tiny_model):
    """snapshot_download is replaced by a stand-in that copies the tiny model and drives the given tqdm class."""
    import shutil

    import huggingface_hub

    calls: list[dict[str, object]] = []

    def fake_snapshot_download(**kw: object) -> str:
        calls.append(kw)
        bar = kw["tqdm_class"](total=1000, unit="B")  # type: ignore[operator]
        for _ in range(4):
            bar.update(250)
        bar.close()
        shutil.copytree(tiny_model["base"], kw["local_dir"], dirs_exist_ok=True)  # type: ignore[arg-type]
        return str(kw["local_dir"])

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    seen: list[tuple[int, int]] = []
    path = dl.download_base(tmp_path / "sd", "someone/sd21", control=Control(lambda d, t, _l: seen.append((d, t))))
    assert path == tmp_path / "sd" and (path / "unet" / "config.json").is_file()
    assert (
        calls[0]["repo_id"] == "someone/sd21"
        and "unet/diffusion_pytorch_model.safetensors" in calls[0]["allow_patterns"]
    )  # type: ignore[operator]
    assert not any(p.endswith(".ckpt") or "fp16" in p for p in calls[0]["allow_patterns"])  # type: ignore[union-attr]
    assert seen[-1] == (1000, 1000)
    cancelled = Control()
    cancelled.cancel()
    with pytest.raises(OperationCancelled):
        dl.download_base(tmp_path / "sd2", "someone/sd21", control=cancelled)

    def offline(**kw: object) -> str:
        raise OSError("offline mode is enabled")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(DownloadError, match="someone/sd21.*offline"):
        dl.download_base(tmp_path / "sd3", "someone/sd21")
