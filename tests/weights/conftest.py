"""Fixtures of the weights tests: an isolated model-folder setup and a real local HTTP server.

The server (``http.server`` in a thread on 127.0.0.1, an ephemeral port) serves small files with
scripted misbehaviour: truncated bodies, dropped connections, HTTP 500, Range support on or off.
"""
from __future__ import annotations

import http.server
import socket
import threading
from dataclasses import dataclass, field

import pytest
import torch

from pervfi_core.weights import fetch as weights_fetch
from pervfi_core.weights.layout import layout_fingerprint


@pytest.fixture(autouse=True)
def isolated_weights(tmp_path, monkeypatch):
    """Fresh $PERVFI_HOME, no registered folders, fast retries."""
    monkeypatch.setenv("PERVFI_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(weights_fetch, "DOWNLOAD_BACKOFF", 0.01)
    monkeypatch.setattr(weights_fetch, "DOWNLOAD_TIMEOUT", 5.0)
    weights_fetch.clear_model_dirs()
    yield
    weights_fetch.clear_model_dirs()


def tiny_raft_small() -> dict[str, torch.Tensor]:
    """A few-kilobyte state dict with RAFT-small's marker keys (correlation radius 1, 4 levels)."""
    g = torch.Generator().manual_seed(7)
    shapes = {
        "fnet.conv1.weight": (4, 3, 3, 3),
        "fnet.conv2.weight": (8, 4, 1, 1),
        "cnet.conv2.weight": (12, 4, 1, 1),
        "update_block.encoder.convc1.weight": (6, 4 * 3**2, 1, 1),
        "update_block.gru.convz.weight": (8, 10, 3, 3),
        "update_block.flow_head.conv1.weight": (8, 8, 3, 3),
        "update_block.flow_head.conv1.bias": (8,),
    }
    return {k: torch.randn(s, generator=g) for k, s in shapes.items()}


def own_state_dict() -> dict[str, torch.Tensor]:
    """A project-trained-style checkpoint: PerVFI v00 at the smallest config (not a published layout)."""
    from pervfi_core import build_model

    torch.manual_seed(7)
    return {k: v.contiguous() for k, v in build_model("tiny").state_dict().items()}


@pytest.fixture(scope="session")
def own_sd() -> dict[str, torch.Tensor]:
    return own_state_dict()


def entry_dict(id_: str, filename: str, sd: dict | None, sources: list, **extra) -> dict:
    """A manifest entry (JSON form) for test files."""
    d = {
        "id": id_, "kind": "pervfi_flow", "filename": filename, "sources": sources,
        "architecture": {"id": "raft-small", "config": {}},
        "licence": {"spdx": "MIT"}, "sha256": None,
        "layout_fingerprint": layout_fingerprint(sd) if sd is not None else None,
    }
    d.update(extra)
    return d


@pytest.fixture
def tiny_sd() -> dict[str, torch.Tensor]:
    return tiny_raft_small()


@pytest.fixture
def make_entry():
    """``make_entry(id, filename, sd, sources, **fields)`` -> manifest entry dict."""
    return entry_dict


@dataclass
class Route:
    body: bytes
    mode: str = "ok"  # ok | truncate | error500 | drop_first | drop_always
    ranges: bool = True  # honour "Range: bytes=N-" with 206
    hits: int = 0


@dataclass
class LocalServer:
    base: str
    routes: dict[str, Route] = field(default_factory=dict)
    requests: list[tuple[str, str | None]] = field(default_factory=list)

    def serve(self, path: str, body: bytes, **kw) -> str:
        self.routes[path] = Route(body, **kw)
        return self.base + path


def _handler(server_state: LocalServer):
    class Handler(http.server.BaseHTTPRequestHandler):
        timeout = 5

        def log_message(self, *args):  # keep pytest output clean
            pass

        def do_GET(self):
            rng = self.headers.get("Range")
            server_state.requests.append((self.path, rng))
            route = server_state.routes.get(self.path)
            if route is None:
                self.send_error(404)
                return
            route.hits += 1
            if route.mode == "error500":
                self.send_error(500, "scripted failure")
                return
            body, start = route.body, 0
            if rng and route.ranges and rng.startswith("bytes="):
                start = int(rng[6:].split("-")[0])
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                self.send_response(200)
            rest = body[start:]
            self.send_header("Content-Length", str(len(rest)))
            self.end_headers()
            cut = route.mode == "truncate" or route.mode == "drop_always" or (
                route.mode == "drop_first" and route.hits == 1)
            self.wfile.write(rest[: len(rest) // 2] if cut else rest)
            self.wfile.flush()
            self.close_connection = True

    return Handler


@pytest.fixture
def http_server():
    """A real HTTP server on 127.0.0.1 (ephemeral port), stopped at teardown."""
    state = LocalServer(base="")
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    state.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 with nothing listening (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
