"""``hotcold models fetch``: resumable, SHA-1-checked downloads from a local HTTP server, and ``--from``.

Every failure path asserts that nothing unverified sits at the target path,
where a later run would take it as the weights.
"""
from __future__ import annotations

import hashlib
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from hotcold.caffe.fetch import FetchError, download, install, models_dir, sha1_of
from hotcold.caffe.zoo import load_model, package_data
from hotcold.cli import main

PAYLOAD = np.random.default_rng(11).integers(0, 256, 300_000, dtype=np.uint8).tobytes()
PAYLOAD_SHA1 = hashlib.sha1(PAYLOAD).hexdigest()
OTHER_SHA1 = "0" * 40


class Server:
    """A threaded HTTP server on 127.0.0.1 serving ``files`` with byte-range support.

    ``cut_after``: the next GET sends only that many bytes of its body (with
    the full Content-Length), then drops the connection. ``ignore_range``:
    answer 200 with the whole file even to a Range request. ``ranges`` records
    each GET's Range header (None without one).
    """

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.cut_after: int | None = None
        self.ignore_range = False
        self.ranges: list[str | None] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                server.ranges.append(self.headers.get("Range"))
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404, "Not Found")
                    return
                start, status = 0, 200
                spec = self.headers.get("Range")
                if spec and not server.ignore_range:
                    start = int(spec.removeprefix("bytes=").rstrip("-"))
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    status = 206
                self.send_response(status)
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                part = body[start:]
                if server.cut_after is not None:
                    part, server.cut_after = part[:server.cut_after], None
                    self.close_connection = True
                self.wfile.write(part)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    srv = Server()
    srv.files["/net.caffemodel"] = PAYLOAD
    yield srv
    srv.close()


def unused_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (a port just released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/net.caffemodel"


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != ".hotcold.lock")


# ---------------------------------------------------------------- download

def test_download_verifies_and_installs(server, tmp_path) -> None:
    seen = []
    result = download(server.url("/net.caffemodel"), tmp_path / "w" / "net.caffemodel", PAYLOAD_SHA1,
                      progress=lambda done, total: seen.append((done, total)))
    assert result.how == "downloaded" and result.path.read_bytes() == PAYLOAD and result.note == ""
    assert leftovers(tmp_path / "w") == ["net.caffemodel"]
    assert seen[-1] == (len(PAYLOAD), len(PAYLOAD)) and server.ranges == [None]
    again = download(server.url("/net.caffemodel"), result.path, PAYLOAD_SHA1)
    assert again.how == "present" and server.ranges == [None]  # verified on disk, no request


def test_interrupted_download_resumes_with_a_range_request(server, tmp_path) -> None:
    dest = tmp_path / "net.caffemodel"
    server.cut_after = 100_000
    with pytest.raises(FetchError, match=r"stopped after 100000 of 300000 bytes.*the same command resumes"):
        download(server.url("/net.caffemodel"), dest, PAYLOAD_SHA1)
    assert leftovers(tmp_path) == ["net.caffemodel.part"]
    result = download(server.url("/net.caffemodel"), dest, PAYLOAD_SHA1)
    assert server.ranges == [None, "bytes=100000-"]
    assert result.how == "resumed" and dest.read_bytes() == PAYLOAD and leftovers(tmp_path) == ["net.caffemodel"]


def test_resume_when_the_server_ignores_range_starts_over(server, tmp_path) -> None:
    dest = tmp_path / "net.caffemodel"
    (tmp_path / "net.caffemodel.part").write_bytes(PAYLOAD[:5000])
    server.ignore_range = True
    result = download(server.url("/net.caffemodel"), dest, PAYLOAD_SHA1)
    assert server.ranges == ["bytes=5000-"] and result.how == "downloaded" and dest.read_bytes() == PAYLOAD


def test_complete_part_is_verified_after_a_416(server, tmp_path) -> None:
    (tmp_path / "net.caffemodel.part").write_bytes(PAYLOAD)
    result = download(server.url("/net.caffemodel"), tmp_path / "net.caffemodel", PAYLOAD_SHA1)
    assert server.ranges == [f"bytes={len(PAYLOAD)}-"] and result.path.read_bytes() == PAYLOAD


def test_checksum_mismatch_sets_the_file_aside(server, tmp_path) -> None:
    dest = tmp_path / "net.caffemodel"
    with pytest.raises(FetchError, match=rf"SHA-1 {PAYLOAD_SHA1}, not the published {OTHER_SHA1}.*"
                                         r"net.caffemodel.sha1-mismatch"):
        download(server.url("/net.caffemodel"), dest, OTHER_SHA1)
    assert leftovers(tmp_path) == ["net.caffemodel.sha1-mismatch"]  # no target, no .part to resume from
    server.files["/net.caffemodel"] = b"<html>captive portal</html>"
    with pytest.raises(FetchError, match="not the published"):
        download(server.url("/net.caffemodel"), dest, PAYLOAD_SHA1)
    assert not dest.exists()


def test_a_bad_file_at_the_target_is_replaced(server, tmp_path) -> None:
    dest = tmp_path / "net.caffemodel"
    dest.write_bytes(b"not the weights")
    result = download(server.url("/net.caffemodel"), dest, PAYLOAD_SHA1)
    assert dest.read_bytes() == PAYLOAD and "net.caffemodel.sha1-mismatch" in result.note
    assert (tmp_path / "net.caffemodel.sha1-mismatch").read_bytes() == b"not the weights"


@pytest.mark.parametrize("url, message", [
    (None, r"cannot reach http://127\.0\.0\.1:\d+/net.caffemodel .*offline.*--from FILE"),
    ("/missing.caffemodel", r"answered HTTP 404 .*--from FILE"),
])
def test_server_down_or_http_error(server, tmp_path, url, message) -> None:
    with pytest.raises(FetchError, match=message):
        download(unused_port_url() if url is None else server.url(url), tmp_path / "net.caffemodel", PAYLOAD_SHA1)
    assert leftovers(tmp_path) == []


def test_offline_keeps_a_partial_download_for_later(server, tmp_path) -> None:
    (tmp_path / "net.caffemodel.part").write_bytes(PAYLOAD[:1234])
    with pytest.raises(FetchError, match=r"The 1234 bytes so far are kept in .*net.caffemodel.part"):
        download(unused_port_url(), tmp_path / "net.caffemodel", PAYLOAD_SHA1)
    assert leftovers(tmp_path) == ["net.caffemodel.part"]


def test_bad_sha1_argument() -> None:
    with pytest.raises(ValueError, match="sha1 must be a SHA-1 of 40 lower-case hex digits"):
        download("http://127.0.0.1/x", "x", "ABC")


# ---------------------------------------------------------------- --from

def test_install_a_users_file(tmp_path) -> None:
    source = tmp_path / "downloads" / "net.caffemodel"
    source.parent.mkdir()
    source.write_bytes(PAYLOAD)
    result = install(source, tmp_path / "models" / "net.caffemodel", PAYLOAD_SHA1)
    assert result.how == "installed" and result.path.read_bytes() == PAYLOAD and source.read_bytes() == PAYLOAD
    assert leftovers(tmp_path / "models") == ["net.caffemodel"]
    assert install(result.path, result.path, PAYLOAD_SHA1).how == "present"


@pytest.mark.parametrize("content, message", [
    (PAYLOAD[:-1], f"has SHA-1 {hashlib.sha1(PAYLOAD[:-1]).hexdigest()}, not the published {PAYLOAD_SHA1}"),
    (None, "no such file"),
])
def test_install_refuses_a_bad_or_missing_file(tmp_path, content, message) -> None:
    source = tmp_path / "net.caffemodel"
    if content is not None:
        source.write_bytes(content)
    with pytest.raises(FetchError, match=message):
        install(source, tmp_path / "models" / "net.caffemodel", PAYLOAD_SHA1)
    assert not (tmp_path / "models").exists() or leftovers(tmp_path / "models") == []
    assert content is None or source.read_bytes() == content  # the user's file is left alone


# ---------------------------------------------------------------- the model zoo and the CLI

def model_yaml(tmp_path: Path, url: str | None) -> Path:
    """A copy of the GoogLeNet entry whose published weights are PAYLOAD at ``url``."""
    text = (package_data("models") / "bvlc_googlenet.yaml").read_text()
    lines = [line for line in text.splitlines() if not line.startswith(("name:", "weights_"))]
    lines += ["name: tiny", "weights_file: tiny.caffemodel", f"weights_sha1: {PAYLOAD_SHA1}",
              f"weights_url: {url if url is not None else 'null'}"]
    path = tmp_path / "tiny.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_cli_fetch_installs_where_the_model_finds_it(server, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("HOTCOLD_MODELS_DIR", str(tmp_path / "store"))
    yaml_path = model_yaml(tmp_path, server.url("/net.caffemodel"))
    spec = load_model(yaml_path)
    with pytest.raises(ValueError, match=r"none installed for 'tiny' .*run `hotcold models fetch tiny`"):
        spec.installed_weights()
    assert main(["models", "fetch", str(yaml_path), "--quiet"]) == 0
    assert spec.installed_weights() == tmp_path / "store" / "tiny" / "tiny.caffemodel" == models_dir() / "tiny" / \
        "tiny.caffemodel"
    assert sha1_of(spec.installed_weights()) == PAYLOAD_SHA1 and "downloaded" in capsys.readouterr().out
    assert main(["models", "fetch", str(yaml_path), "--to", str(tmp_path / "elsewhere"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "elsewhere" / "tiny.caffemodel").is_file() and \
        f"--weights {tmp_path / 'elsewhere' / 'tiny.caffemodel'}" in out


def test_cli_fetch_errors(server, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("HOTCOLD_MODELS_DIR", str(tmp_path / "store"))
    server.files["/net.caffemodel"] = PAYLOAD[::-1]
    assert main(["models", "fetch", str(model_yaml(tmp_path, server.url("/net.caffemodel"))), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hotcold models: error: ") and "not the published" in err
    assert not (tmp_path / "store" / "tiny" / "tiny.caffemodel").exists()
    assert main(["models", "fetch", str(model_yaml(tmp_path, None))]) == 2
    assert "no direct download URL" in capsys.readouterr().err
    assert main(["models", "fetch", "lenet"]) == 2
    assert "has no published weights" in capsys.readouterr().err


def test_cli_fetch_from_a_file(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("HOTCOLD_MODELS_DIR", str(tmp_path / "store"))
    source = tmp_path / "ResNet-152-model.caffemodel"
    source.write_bytes(PAYLOAD)
    assert main(["models", "fetch", "resnet152", "--from", str(source)]) == 2
    assert "not the published 251edb93604ac8268c7fd2227a0f15144310e1aa" in capsys.readouterr().err
    assert not (tmp_path / "store" / "resnet152" / "ResNet-152-model.caffemodel").exists()
    assert main(["models", "fetch", str(model_yaml(tmp_path, None)), "--from", str(source)]) == 0
    assert (tmp_path / "store" / "tiny" / "tiny.caffemodel").read_bytes() == PAYLOAD


@pytest.mark.parametrize("change, message", [
    ({"weights_sha1": None}, "weights_file and weights_sha1 go together"),
    ({"weights_sha1": "405FC5ACD08A3BB12DE8EE5E23A96BEC22F08204"}, "weights_sha1 must be a SHA-1"),
    ({"weights_file": "../bvlc_googlenet.caffemodel"}, "weights_file must be a plain name"),
    ({"weights_url": "ftp://example.org/w.caffemodel"}, "weights_url must be an http:// or https:// URL"),
])
def test_model_yaml_weights_keys_are_checked(tmp_path, change, message) -> None:
    import yaml

    raw = yaml.safe_load((package_data("models") / "bvlc_googlenet.yaml").read_text())
    raw.update(change)
    raw = {k: v for k, v in raw.items() if v is not None or not k.startswith("weights_")}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ValueError, match=message):
        load_model(path)


def test_shipped_entries_publish_their_checksums() -> None:
    googlenet, resnet = load_model("bvlc_googlenet"), load_model("resnet152")
    assert (googlenet.weights_file, googlenet.weights_sha1, googlenet.weights_url) == (
        "bvlc_googlenet.caffemodel", "405fc5acd08a3bb12de8ee5e23a96bec22f08204",
        "http://dl.caffe.berkeleyvision.org/bvlc_googlenet.caffemodel")
    assert (resnet.weights_file, resnet.weights_sha1, resnet.weights_url) == (
        "ResNet-152-model.caffemodel", "251edb93604ac8268c7fd2227a0f15144310e1aa", None)
    assert load_model("lenet").weights_file is None
