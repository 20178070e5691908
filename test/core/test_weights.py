"""`sleeg weights`: verified, resumable downloads from a local HTTP server (never the internet),
and known names resolved through the cache, the shared folder or a download."""

import hashlib
import http.server
import threading
from pathlib import Path
from typing import ClassVar

import pytest
from helpers.paths import shared_path

from sleeg_core.cli import main as sleeg
from sleeg_core.common.errors import SleegError
from sleeg_core.model import weights
from sleeg_core.model.inference import load_segmenter

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB, generated
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves PAYLOAD at any path, honouring `Range: bytes=N-`; records the ranges asked for."""

    ranges: ClassVar[list[str | None]] = []

    def do_GET(self):
        rng = self.headers.get("Range")
        type(self).ranges.append(rng)
        start = int(rng.split("=")[1].rstrip("-")) if rng else 0
        body = PAYLOAD[start:]
        self.send_response(206 if rng else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    RangeHandler.ranges = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/enet.pth"
    httpd.shutdown()


def download(url: str, dest: Path, sha: str = SHA) -> int:
    args = ["weights", "download", "enet_cityscapes", "--dest", str(dest), "--quiet"]
    return sleeg([*args, "--url", url, "--sha256", sha])


def test_download_verifies_and_places_file(server, tmp_path):
    assert download(server, tmp_path) == 0
    assert (tmp_path / "enet.pth").read_bytes() == PAYLOAD
    assert not (tmp_path / "enet.pth.part").exists()
    assert RangeHandler.ranges == [None]


def test_download_resumes_partial_file(server, tmp_path):
    (tmp_path / "enet.pth.part").write_bytes(PAYLOAD[:300_000])
    assert download(server, tmp_path) == 0
    assert (tmp_path / "enet.pth").read_bytes() == PAYLOAD
    assert RangeHandler.ranges == ["bytes=300000-"]


def test_checksum_mismatch_is_an_error_and_leaves_nothing(server, tmp_path, capsys):
    assert download(server, tmp_path, sha="0" * 64) == 2
    assert "sha256 mismatch" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_unreachable_server_is_a_clear_error(tmp_path, capsys):
    assert download("http://127.0.0.1:9/enet.pth", tmp_path) == 2
    assert "download of enet_cityscapes" in capsys.readouterr().err


def test_register_local_file(tmp_path, capsys):
    src = tmp_path / "mine.pth"
    src.write_bytes(PAYLOAD)
    dest = tmp_path / "weights"
    args = ["weights", "download", "enet_cityscapes", "--dest", str(dest), "--from", str(src)]
    assert sleeg([*args, "--sha256", SHA]) == 0
    assert (dest / "enet.pth").read_bytes() == PAYLOAD
    assert sleeg(args) == 2  # the real ENet digest does not match the generated file
    assert "sha256 mismatch" in capsys.readouterr().err


def test_list_shows_url_and_digest(capsys):
    assert sleeg(["weights", "list"]) == 0
    out = capsys.readouterr().out
    assert "releases/download/v1.0/enet.pth" in out
    assert "a2813d0505a689c80e84f49c218a853b7bf37c70b862b81ccfae58ec6dd138be" in out


def test_list_shows_dabnet_and_whether_each_is_cached(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SLEEG_CACHE", str(tmp_path))
    cached = tmp_path / "weights" / "espnet_p_2_q_8.pth"
    cached.parent.mkdir()
    cached.write_bytes(b"not the real file")  # fails its sha256: not counted as cached
    assert sleeg(["weights", "list"]) == 0
    out = capsys.readouterr().out
    assert "dabnet_cityscapes  (segmentor: dabnet)" in out
    assert "9a8ecc415e9199f5ebd26e21abdd10facd7010d209c812555f98b6b95766aa40" in out
    assert "IssamLaradji/CBStyling/raw/4220ee1618f290125d6b29af64c4aacd994cea88/" in out
    assert "research use, attribute DABNet authors" in out
    assert out.count("cached:  no") == len(weights.KNOWN_WEIGHTS)
    assert f"cache: {tmp_path / 'weights'}" in out


def test_list_shows_the_shipped_heads_and_an_unreadable_one(tmp_path, monkeypatch, capsys):
    extra = tmp_path / "models"
    extra.mkdir()
    (extra / "broken_head.pt").write_bytes(b"not a head file")
    monkeypatch.setenv("SLEEG_MODELS", str(extra))
    assert sleeg(["weights", "list"]) == 0
    out = capsys.readouterr().out
    assert "shipped heads (--head NAME, the node's head:=NAME):" in out
    default = "enet_cityscapes_sleeg  (segmentor: enet; weights: enet_cityscapes)  2 branches"
    assert default in out  # the node's default head (models/README.md)
    dabnet = "dabnet_cityscapes_sleeg  (segmentor: dabnet; weights: dabnet_cityscapes)  1 branch"
    assert f"{dabnet}, λ = 2, 150 steps" in out  # DABNet's default: the 150-step recipe
    assert "broken_head  unreadable: " in out and str(extra / "broken_head.pt") in out


# ---------------------------------------------------------------- known names → files

CLOSED = "http://127.0.0.1:9/tiny.pth"  # the discard port: connection refused


@pytest.fixture
def tiny(tmp_path, monkeypatch) -> weights.KnownWeights:
    """A known entry for PAYLOAD served from nowhere; an empty cache and shared folder."""
    monkeypatch.setenv("SLEEG_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SLEEG_SHARED", str(tmp_path / "shared"))
    entry = weights.KnownWeights("tiny_test", "enet", "tiny.pth", CLOSED, SHA, "test", "test")
    monkeypatch.setitem(weights.KNOWN_WEIGHTS, entry.name, entry)
    return entry


def test_cache_location_rule(monkeypatch, tmp_path):
    monkeypatch.delenv("SLEEG_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert weights.cache_dir() == tmp_path / "home" / ".cache" / "sleeg" / "weights"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert weights.cache_dir() == tmp_path / "xdg" / "sleeg" / "weights"
    monkeypatch.setenv("SLEEG_CACHE", str(tmp_path / "sleeg"))
    assert weights.cache_dir() == tmp_path / "sleeg" / "weights"


def test_name_resolves_to_the_verified_cached_file(tiny, tmp_path):
    cached = tmp_path / "cache" / "weights" / "tiny.pth"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(PAYLOAD)
    assert weights.resolve("tiny_test") == cached  # the closed URL was not needed


def test_name_is_registered_from_the_shared_folder(tiny, tmp_path):
    shared = tmp_path / "shared" / "data" / "weights" / "tiny_test" / "tiny.pth"
    shared.parent.mkdir(parents=True)
    shared.write_bytes(PAYLOAD)
    path = weights.resolve("tiny_test")
    assert path == tmp_path / "cache" / "weights" / "tiny.pth"
    assert path.read_bytes() == PAYLOAD and shared.is_file()


def test_a_shared_copy_with_the_wrong_digest_is_skipped_for_a_download(
    tiny, tmp_path, server, monkeypatch
):
    shared = tmp_path / "shared" / "data" / "weights" / "tiny_test" / "tiny.pth"
    shared.parent.mkdir(parents=True)
    shared.write_bytes(PAYLOAD[:-1] + b"x")
    monkeypatch.setitem(weights.KNOWN_WEIGHTS, "tiny_test", weights.KnownWeights(
        "tiny_test", "enet", "tiny.pth", server, SHA, "test", "test"))  # fmt: skip
    assert weights.resolve("tiny_test").read_bytes() == PAYLOAD
    assert RangeHandler.ranges == [None]


def test_a_corrupt_cached_file_is_fetched_again(tiny, tmp_path, server, monkeypatch):
    cached = tmp_path / "cache" / "weights" / "tiny.pth"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"x" * len(PAYLOAD))
    with pytest.raises(SleegError, match="sha256 mismatch"):  # offline: says why
        weights.resolve("tiny_test")
    monkeypatch.setitem(weights.KNOWN_WEIGHTS, "tiny_test", weights.KnownWeights(
        "tiny_test", "enet", "tiny.pth", server, SHA, "test", "test"))  # fmt: skip
    assert weights.resolve("tiny_test") == cached
    assert cached.read_bytes() == PAYLOAD


def test_offline_with_no_copy_is_one_line_saying_what_was_tried(tiny, tmp_path):
    with pytest.raises(SleegError) as err:
        weights.resolve("tiny_test")
    message = str(err.value)
    assert "\n" not in message
    assert "weights 'tiny_test' unavailable" in message
    assert f"cache {tmp_path / 'cache' / 'weights' / 'tiny.pth'} absent" in message
    assert str(tmp_path / "shared" / "data" / "weights" / "tiny_test" / "tiny.pth") in message
    assert f"download of tiny_test from {CLOSED} failed" in message
    assert "fix: sleeg weights download tiny_test --from FILE" in message


def test_the_suggested_fix_registers_into_the_cache(tiny, tmp_path):
    source = tmp_path / "mine.pth"
    source.write_bytes(PAYLOAD)
    assert sleeg(["weights", "download", "tiny_test", "--from", str(source)]) == 0
    assert weights.resolve("tiny_test") == tmp_path / "cache" / "weights" / "tiny.pth"


def test_a_path_is_used_as_given_even_when_it_is_named_like_known_weights(
    tiny, tmp_path, monkeypatch
):
    assert weights.resolve("elsewhere/enet.pth") == Path("elsewhere/enet.pth")
    monkeypatch.chdir(tmp_path)
    Path("tiny_test").write_bytes(b"a local file called like the entry")
    assert weights.resolve("tiny_test") == Path("tiny_test")
    assert not (tmp_path / "cache").exists()


@pytest.mark.shared
@pytest.mark.parametrize("name", sorted(weights.KNOWN_WEIGHTS))
def test_every_known_name_loads_its_segmentor_from_shared(name, tmp_path, monkeypatch):
    entry = weights.known(name)
    source = shared_path("weights", name, entry.filename)
    monkeypatch.setenv("SLEEG_SHARED", str(source.parents[3]))
    monkeypatch.setenv("SLEEG_CACHE", str(tmp_path))
    model, _ = load_segmenter(None, name, device="cpu")  # the segmentor from the entry
    assert model.segmentor.info.name == entry.segmentor
    cached = tmp_path / "weights" / entry.filename
    assert weights.resolve(name) == cached and weights.sha256_of(cached) == entry.sha256
