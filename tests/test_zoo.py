"""The model zoo and every source ``load_model`` takes: package files, URLs, the Hub, folders."""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import http.server
import importlib.util
import json
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open

from _helpers import CAMVID, make_camvid
from lrnet import LrnetError, _pins, checkpoint, pretrained, zoo
from lrnet.cli import main
from lrnet.config import from_dict
from lrnet.data.camvid import CAMVID_CLASSES, CAMVID_PALETTE
from lrnet.inference.predictor import Predictor

TESTS = Path(__file__).resolve().parent
PINS = TESTS / "zoo_pins.json"
REGENERATE = "nice -n 19 .venv/bin/python bench/ship_model.py --pins-only --name NAME"
SHIPPED = [e for e in zoo.ZOO.values() if e.file]
TINY = {
    "model": {"name": "lrn", "num_classes": 3, "width": 0.125, "skip_channels": 8},
    "data": {"dataset": "synthetic", "eval_size": [64, 96]},
}
TINY_CLASSES = ["sky", "road", "car"]
TINY_PALETTE = [(1, 2, 3), (4, 5, 6), (7, 8, 9)]


def _tiny_model() -> torch.nn.Module:
    torch.manual_seed(0)
    model = checkpoint.build_from_config(from_dict(TINY))
    for module in model.modules():  # random BN statistics: the outputs differ across classes
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    return model.eval()


def _outputs(model: torch.nn.Module) -> torch.Tensor:
    torch.manual_seed(1)
    with torch.no_grad():
        return model(torch.rand(1, 3, 64, 96))[-1]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _installed(entry: zoo.ZooEntry) -> bool:
    return entry.file is not None and (zoo.weights_dir() / entry.file).is_file()


# ---- the entries ---------------------------------------------------------------------------


@pytest.mark.parametrize("entry", list(zoo.ZOO.values()), ids=list(zoo.ZOO))
def test_every_entry_builds_the_network_it_describes(entry: zoo.ZooEntry) -> None:
    config = from_dict(dict(entry.config))
    model = checkpoint.build_from_config(config)
    assert sum(p.numel() for p in model.parameters()) == entry.parameters
    assert config.model.num_classes == len(entry.classes) == len(entry.palette)
    assert entry.run_size == tuple(config.data.eval_size)
    assert entry.licence and entry.training_command.startswith("lrnet train")
    assert len(entry.val_miou) in (0, 6)


def test_camvid_entries_use_the_datasets_classes_and_colours() -> None:
    for entry in zoo.ZOO.values():
        if entry.config["data"]["dataset"] == "camvid":
            assert list(entry.classes) == CAMVID_CLASSES
            assert list(entry.palette) == CAMVID_PALETTE
            assert "CC BY-NC 4.0" in entry.licence and "research" in entry.licence


def test_an_entry_without_weights_says_so() -> None:
    missing = [e for e in zoo.ZOO.values() if not e.available]
    assert [e.name for e in missing] == ["camvid"]  # the paper's network needs a GPU run
    with pytest.raises(LrnetError, match="camvid has no weights yet"):
        pretrained.load_model("camvid")


def test_unknown_names_and_paths_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(LrnetError, match=r"no-such-model does not exist.*camvid-lite"):
        pretrained.load_model("no-such-model")
    with pytest.raises(LrnetError, match=r"best\.pt does not exist"):
        pretrained.load_model(tmp_path / "runs" / "best.pt")
    with pytest.raises(LrnetError, match="known: camvid-lite"):
        zoo.get("nope")


@pytest.mark.parametrize(
    ("text", "hub"),
    [
        ("user/repo", True),
        ("user/repo@v1.0", True),
        ("org-name/lrn.camvid_v2", True),
        ("runs/best.pt", False),
        ("runs/model.safetensors", False),
        ("./user/repo", False),
        ("/abs/path", False),
        ("a/b/c", False),
        ("camvid-lite", False),
    ],
)
def test_hub_ids_are_told_from_paths(text: str, hub: bool) -> None:
    assert zoo.is_hub_id(text) is hub


def test_entries_refuse_inconsistent_fields() -> None:
    base = {"name": "x", "summary": "", "config": TINY, "classes": ("a",), "palette": ((1, 2, 3),)}
    with pytest.raises(LrnetError, match="no sha256"):
        zoo.ZooEntry(**base, url="https://example.org/x.safetensors")
    with pytest.raises(LrnetError, match="both a file and a url"):
        zoo.ZooEntry(**base, file="x.safetensors", url="https://e/x", sha256="0" * 64)
    with pytest.raises(LrnetError, match="64 lowercase hex"):
        zoo.ZooEntry(**base, file="x.safetensors", sha256="abc")
    with pytest.raises(LrnetError, match="1 classes but 2 colours"):
        zoo.ZooEntry(**{**base, "palette": ((1, 2, 3), (4, 5, 6))})


# ---- shipped weights -------------------------------------------------------------------------


@pytest.mark.parametrize("entry", SHIPPED, ids=[e.name for e in SHIPPED])
def test_shipped_weights_are_the_entrys_fp16_file(entry: zoo.ZooEntry) -> None:
    if not _installed(entry):
        pytest.skip(f"{entry.file} is not in this checkout")
    path = zoo.weights_dir() / entry.file  # type: ignore[operator]
    assert zoo.sha256_of(path) == entry.sha256, "run bench/ship_model.py: it fills the entry"
    with safe_open(str(path), "pt") as f:
        dtypes = {f.get_slice(k).get_dtype() for k in f.keys()}  # noqa: SIM118
    assert "F16" in dtypes and "F32" not in dtypes
    loaded = pretrained.load_model(entry.name)
    assert all(p.dtype == torch.float32 for p in loaded.model.parameters())
    assert not loaded.model.training
    assert loaded.classes == list(entry.classes)
    assert loaded.palette == list(entry.palette)
    assert loaded.config.data.eval_size == list(entry.run_size or [])


@pytest.mark.parametrize("entry", SHIPPED, ids=[e.name for e in SHIPPED])
def test_shipped_model_outputs_are_pinned(entry: zoo.ZooEntry) -> None:
    """A change to the network, the weights or the preprocessing moves these statistics."""
    if not _installed(entry):
        pytest.skip(f"{entry.file} is not in this checkout")
    pins = json.loads(PINS.read_text()).get(entry.name) if PINS.is_file() else None
    assert pins is not None, f"no pins for {entry.name}: {REGENERATE.replace('NAME', entry.name)}"
    assert pins["sha256"] == entry.sha256, (
        f"the pins are of other weights; {REGENERATE.replace('NAME', entry.name)}"
    )
    got = _pins.prediction_stats(entry.name, tuple(pins["size"]))
    # Tolerances: float rounding across CPUs and thread counts, far below any real change.
    np.testing.assert_allclose(got["mean_probabilities"], pins["mean_probabilities"], atol=2e-3)
    np.testing.assert_allclose(got["final_fractions"], pins["final_fractions"], atol=5e-3)
    for stage, (a, b) in enumerate(
        zip(got["stage_fractions"], pins["stage_fractions"], strict=True)
    ):
        np.testing.assert_allclose(a, b, atol=1e-2, err_msg=f"stage s_{stage + 1}")


def test_fingerprint_sees_a_preprocessing_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pin test can fail: another resize of the pixels and of the logits (the Predictor
    path's pre- and post-processing) moves the fingerprint."""
    folder = pretrained.save_pretrained(
        _tiny_model(), from_dict(TINY), tmp_path / "tiny", classes=TINY_CLASSES
    )
    first = _pins.prediction_stats(folder, (40, 60))
    assert first == _pins.prediction_stats(folder, (40, 60))  # deterministic
    import lrnet.inference.image
    import lrnet.inference.predictor

    real = lrnet.inference.image.resize  # letterbox and Predictor look it up on every call
    for module in (lrnet.inference.image, lrnet.inference.predictor):
        monkeypatch.setattr(module, "resize", lambda x, size: real(x * 0.5, size))
    second = _pins.prediction_stats(folder, (40, 60))
    shift = np.abs(np.subtract(first["mean_probabilities"], second["mean_probabilities"])).max()
    assert shift > 2e-3  # the pin test's tolerance


@pytest.mark.skipif(not CAMVID.is_dir(), reason=f"CamVid is not at {CAMVID}")
@pytest.mark.parametrize("entry", SHIPPED, ids=[e.name for e in SHIPPED])
def test_shipped_model_segments_camvid_val(entry: zoo.ZooEntry) -> None:
    """Independent of the pins: the shipped weights label real street scenes well."""
    if not _installed(entry) or not entry.val_miou:
        pytest.skip("no shipped, validated weights")
    from lrnet.data import build_dataset

    dataset = build_dataset("camvid", CAMVID, "val")
    predictor = Predictor.from_pretrained(entry.name, backend="torch", precision="fp32")
    correct = total = 0
    for index in range(0, len(dataset), 10):  # 11 of the 101 val images
        image, mask = dataset[index]
        labels = torch.from_numpy(predictor.predict(image).labels)
        valid = mask != 255
        correct += int((labels[valid] == mask[valid]).sum())
        total += int(valid.sum())
    assert correct / total > 0.8  # camvid-lite: about 0.9 global accuracy on val


# ---- URL entries: a local HTTP server --------------------------------------------------------


class _Server:
    """Serves ``routes``: path -> (body, announced length or None for the true one)."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[bytes, int | None]] = {}
        self.requests: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                if self.path not in server.routes:
                    self.send_error(404)
                    return
                body, length = server.routes[self.path]
                self.send_response(200)
                self.send_header("Content-Length", str(length or len(body)))
                self.end_headers()
                self.wfile.write(body)  # then the connection closes, short if length > body

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[_Server]:
    monkeypatch.setenv("LRNET_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    s = _Server()
    thread = threading.Thread(target=s.httpd.serve_forever, daemon=True)
    thread.start()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


def _weights_bytes(tmp_path: Path) -> bytes:
    path = pretrained.save_weights(_tiny_model(), tmp_path / "w.safetensors", dtype=torch.float16)
    return path.read_bytes()


def _url_entry(url: str, sha256: str) -> zoo.ZooEntry:
    return zoo.ZooEntry(
        name="tiny",
        summary="a test model",
        config=TINY,
        classes=tuple(TINY_CLASSES),
        palette=tuple(TINY_PALETTE),
        url=url,
        sha256=sha256,
    )


def _cache_files(tmp_path: Path) -> list[str]:
    cache = tmp_path / "cache"
    return sorted(p.name for p in cache.iterdir()) if cache.is_dir() else []


def test_url_entry_is_fetched_once_checked_and_loaded(server: _Server, tmp_path: Path) -> None:
    body = _weights_bytes(tmp_path)
    server.routes["/models/tiny.safetensors"] = (body, None)
    entry = _url_entry(f"{server.url}/models/tiny.safetensors", hashlib.sha256(body).hexdigest())
    loaded = pretrained.load_model(entry)
    torch.testing.assert_close(_outputs(loaded.model), _outputs(_tiny_model()), atol=2e-2, rtol=0)
    assert loaded.classes == TINY_CLASSES and loaded.palette == TINY_PALETTE
    (cached,) = (tmp_path / "cache").iterdir()
    assert cached.read_bytes() == body and _mode(cached) == 0o644
    pretrained.load_model(entry)  # from the cache
    assert server.requests == ["/models/tiny.safetensors"]
    cached.write_bytes(b"damaged")  # a damaged cache file is fetched again
    assert pretrained.load_model(entry).classes == TINY_CLASSES
    assert len(server.requests) == 2 and cached.read_bytes() == body


def test_url_entry_may_point_at_a_checkpoint(server: _Server, tmp_path: Path) -> None:
    path = tmp_path / "tiny.pt"
    config = from_dict(TINY)
    checkpoint.save_checkpoint(path, checkpoint.training_state(_tiny_model(), config))
    server.routes["/tiny.pt"] = (path.read_bytes(), None)
    entry = _url_entry(f"{server.url}/tiny.pt", zoo.sha256_of(path))
    loaded = pretrained.load_model(entry)
    torch.testing.assert_close(_outputs(loaded.model), _outputs(_tiny_model()))
    assert loaded.classes == TINY_CLASSES  # the checkpoint has none; the entry's are used


def test_url_with_a_wrong_hash_leaves_nothing(server: _Server, tmp_path: Path) -> None:
    body = _weights_bytes(tmp_path)
    server.routes["/tiny.safetensors"] = (body, None)
    entry = _url_entry(f"{server.url}/tiny.safetensors", hashlib.sha256(b"other").hexdigest())
    with pytest.raises(LrnetError, match=r"has SHA-256 [0-9a-f]{64}, not the .* nothing was saved"):
        pretrained.load_model(entry)
    assert _cache_files(tmp_path) == []


def test_a_cut_off_download_leaves_nothing(server: _Server, tmp_path: Path) -> None:
    body = _weights_bytes(tmp_path)
    half = body[: len(body) // 2]
    server.routes["/tiny.safetensors"] = (half, len(body))  # announces all, sends half, closes
    entry = _url_entry(f"{server.url}/tiny.safetensors", hashlib.sha256(body).hexdigest())
    with pytest.raises(LrnetError, match=rf"cut off: {len(half)} of {len(body)} bytes"):
        pretrained.load_model(entry)
    assert _cache_files(tmp_path) == []


def test_a_missing_url_is_a_clear_error(server: _Server, tmp_path: Path) -> None:
    entry = _url_entry(f"{server.url}/gone.safetensors", "0" * 64)
    with pytest.raises(LrnetError, match=r"downloading .*gone\.safetensors failed .*404"):
        pretrained.load_model(entry)
    assert _cache_files(tmp_path) == []


# ---- the Hugging Face Hub, offline ------------------------------------------------------------


def test_hub_repo_id_loads_from_the_hub_cache_offline(tmp_path: Path) -> None:
    pytest.importorskip("huggingface_hub")
    revision = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hf" / "hub" / "models--someone--lrn-tiny"
    pretrained.save_pretrained(
        _tiny_model(),
        from_dict(TINY),
        repo / "snapshots" / revision,
        classes=TINY_CLASSES,
        palette=TINY_PALETTE,
    )
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    expected = _outputs(_tiny_model())
    torch.save(expected, tmp_path / "expected.pt")
    script = f"""
import json, torch
from lrnet import LrnetError
from lrnet.pretrained import load_model
loaded = load_model("someone/lrn-tiny")
torch.manual_seed(1)
with torch.no_grad():
    out = loaded.model(torch.rand(1, 3, 64, 96))[-1]
torch.testing.assert_close(out, torch.load({str(tmp_path / "expected.pt")!r}))
try:
    load_model("someone/not-cached")
except LrnetError as exc:
    error = str(exc)
print(json.dumps({{"classes": loaded.classes, "error": error}}))
"""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    env.pop("HF_HUB_CACHE", None)
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["classes"] == TINY_CLASSES
    assert "someone/not-cached is no local file or folder" in out["error"]
    assert "HF_HUB_OFFLINE" in out["error"]


# ---- save_pretrained and the folders it writes -----------------------------------------------


def test_folder_saved_as_the_readme_shows_keeps_its_classes(tmp_path: Path) -> None:
    """`save_pretrained(model, config, dir)` with no class names, for a CamVid model."""
    config = from_dict(
        {
            "model": {"num_classes": 11, "width": 0.125, "skip_channels": 8},
            "data": {"dataset": "camvid", "eval_size": [64, 96]},
        }
    )
    model = checkpoint.build_from_config(config).eval()
    folder = pretrained.save_pretrained(model, config, tmp_path / "camvid-mine")
    loaded = pretrained.from_pretrained(folder)
    assert loaded.classes == CAMVID_CLASSES and loaded.palette == CAMVID_PALETTE
    meta = json.loads((folder / "config.json").read_text())
    assert meta["run_size"] == [64, 96] and meta["config"]["model"]["width"] == 0.125
    for name in ("config.json", "model.safetensors", "README.md"):
        assert _mode(folder / name) == 0o644, name
    card = (folder / "README.md").read_text()
    assert "CC BY-NC 4.0" in card and "| 10 | Bicyclist | (0, 128, 192) |" in card
    assert "not recorded" in card  # no command given


def test_save_pretrained_card_holds_the_stage_table_and_command(tmp_path: Path) -> None:
    folder = pretrained.save_pretrained(
        _tiny_model(),
        from_dict(TINY),
        tmp_path / "tiny",
        classes=TINY_CLASSES,
        palette=TINY_PALETTE,
        val_miou=[30.0, 40.25, 50.0, 55.0, 58.0, 60.5],
        command="lrnet train configs/synthetic.yaml",
        licence="made up for the test",
    )
    card = (folder / "README.md").read_text()
    assert "| s_1 | s_2 | s_3 | s_4 | s_5 | s_6 |" in card
    assert "| 30.0 | 40.2 | 50.0 | 55.0 | 58.0 | 60.5 |" in card
    assert "lrnet train configs/synthetic.yaml" in card and "made up for the test" in card
    assert "library_name: lrnet" in card


def test_save_pretrained_fp16_halves_the_file_and_loads_as_fp32(tmp_path: Path) -> None:
    model, config = _tiny_model(), from_dict(TINY)
    full = pretrained.save_pretrained(model, config, tmp_path / "fp32", classes=TINY_CLASSES)
    half = pretrained.save_pretrained(
        model, config, tmp_path / "fp16", classes=TINY_CLASSES, dtype=torch.float16
    )
    size = {p.name: (p / "model.safetensors").stat().st_size for p in (full, half)}
    assert size["fp16"] < 0.55 * size["fp32"]
    loaded = pretrained.load_model(half)
    assert all(p.dtype == torch.float32 for p in loaded.model.parameters())
    torch.testing.assert_close(_outputs(loaded.model), _outputs(model), atol=2e-2, rtol=0)
    torch.testing.assert_close(_outputs(pretrained.load_model(full).model), _outputs(model))
    with pytest.raises(LrnetError, match="dtype must be"):
        pretrained.save_pretrained(
            model, config, tmp_path / "x", classes=TINY_CLASSES, dtype=torch.int8
        )


def test_save_pretrained_reads_a_folder_datasets_class_file(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "classes.yaml").write_text(
        "names: [a, b, c]\npalette: [[1, 1, 1], [2, 2, 2], [3, 3, 3]]\n"
    )
    config = from_dict({**TINY, "data": {"dataset": "folder", "root": str(tmp_path / "data")}})
    folder = pretrained.save_pretrained(_tiny_model(), config, tmp_path / "out")
    loaded = pretrained.load_model(folder)
    assert loaded.classes == ["a", "b", "c"] and loaded.palette == [(1, 1, 1), (2, 2, 2), (3, 3, 3)]


def test_save_pretrained_without_class_names_is_an_error(tmp_path: Path) -> None:
    config = from_dict({**TINY, "data": {"dataset": "folder", "root": str(tmp_path / "nothing")}})
    with pytest.raises(LrnetError, match=r"no class names .* pass classes="):
        pretrained.save_pretrained(_tiny_model(), config, tmp_path / "out")
    with pytest.raises(LrnetError, match="2 class names for a model of 3 classes"):
        pretrained.save_pretrained(_tiny_model(), config, tmp_path / "out", classes=["a", "b"])


def test_checkpoint_files_are_written_0644(tmp_path: Path) -> None:
    path = tmp_path / "c.pt"
    checkpoint.save_checkpoint(path, checkpoint.training_state(_tiny_model(), from_dict(TINY)))
    assert _mode(path) == 0o644


# ---- what is refused, and how it is said -----------------------------------------------------


def test_an_unsafe_pickle_is_refused_without_suggesting_weights_only_false(tmp_path: Path) -> None:
    path = tmp_path / "unsafe.pt"
    torch.save({"model": argparse.Namespace(a=1), "config": {}}, path)
    with pytest.raises(LrnetError) as info:
        pretrained.load_model(path)
    message = str(info.value)
    assert "unsafe.pt holds objects lrnet refuses to load for safety" in message
    assert "argparse.Namespace" in message and "weights_only" not in message


def test_a_checkpoint_whose_model_is_not_a_state_dict(tmp_path: Path) -> None:
    path = tmp_path / "odd.pt"
    torch.save({"model": [1, 2, 3], "config": dict(TINY)}, path)
    with pytest.raises(LrnetError, match=r"odd\.pt: its weights are a list, not a state dict"):
        pretrained.load_model(path)
    torch.save({"model": {}, "config": [1]}, path)
    with pytest.raises(LrnetError, match=r"odd\.pt: its 'config' is a list, not a mapping"):
        pretrained.load_model(path)


def test_a_config_json_without_a_config_mapping(tmp_path: Path) -> None:
    folder = pretrained.save_pretrained(
        _tiny_model(), from_dict(TINY), tmp_path / "f", classes=TINY_CLASSES
    )
    (folder / "config.json").write_text(json.dumps({"classes": TINY_CLASSES}))
    with pytest.raises(LrnetError, match=r"f/config\.json has no 'config' mapping"):
        pretrained.load_model(folder)
    (folder / "config.json").write_text("{not json")
    with pytest.raises(LrnetError, match=r"f/config\.json cannot be read as JSON"):
        pretrained.load_model(folder)


def test_weights_that_do_not_fit_name_the_file_and_the_tensors(tmp_path: Path) -> None:
    folder = pretrained.save_pretrained(
        _tiny_model(), from_dict(TINY), tmp_path / "f", classes=TINY_CLASSES
    )
    meta = json.loads((folder / "config.json").read_text())
    meta["config"]["model"]["num_classes"] = 5
    (folder / "config.json").write_text(json.dumps(meta))
    with pytest.raises(
        LrnetError, match=r"weights in .*f \(model\.safetensors\) do not fit"
    ) as info:
        pretrained.load_model(folder)
    assert "of another shape" in str(info.value) and "(the model has (5," in str(info.value)
    state = {f"module.{k}": v for k, v in _tiny_model().state_dict().items()}
    torch.save({"model": state, "config": dict(TINY)}, tmp_path / "ddp.pt")
    with pytest.raises(LrnetError, match=r"strip the 'module\.' prefix"):
        pretrained.load_model(tmp_path / "ddp.pt")


def test_a_bare_weights_file_asks_for_its_folder(tmp_path: Path) -> None:
    path = pretrained.save_weights(_tiny_model(), tmp_path / "w.safetensors")
    with pytest.raises(LrnetError, match="holds weights only"):
        pretrained.load_model(path)
    folder = pretrained.save_pretrained(
        _tiny_model(), from_dict(TINY), tmp_path / "f", classes=TINY_CLASSES
    )
    assert pretrained.load_model(folder / "model.safetensors").classes == TINY_CLASSES
    (folder / "model.safetensors").write_bytes(b"\x00" * 5)
    with pytest.raises(LrnetError, match=r"model\.safetensors cannot be read as safetensors"):
        pretrained.load_model(folder)


# ---- the commands ----------------------------------------------------------------------------


def test_models_command_lists_the_zoo(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for entry in zoo.ZOO.values():
        assert f"| {entry.name} | {entry.parameters:,} |" in out
        assert entry.training_command in out
    assert "| camvid | 14,930,618 | 360x480 | not available |" in out
    assert "research and personal use only" in out
    # What camvid-lite saw, and where it is known to fail.
    assert (
        "360x480 frames filmed from a car driving through Cambridge, UK, by day and at dusk" in out
    )
    assert (
        "  limits:   never shown portrait photos of people, night, rain or scenes other than "
        "streets: people at close range come out as building, road or car\n"
    ) in out
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == list(zoo.ZOO) and rows[0]["run_size"] == [180, 240]
    assert "night" in rows[0]["limits"]


def test_models_command_does_not_import_torch() -> None:
    code = "import sys; from lrnet.cli import main; main(['models']); print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "False"


def _camvid_lite() -> zoo.ZooEntry:
    entry = zoo.ZOO["camvid-lite"]
    if not _installed(entry):
        pytest.skip("camvid-lite weights are not in this checkout")
    return entry


def test_predict_and_evaluate_take_a_model_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _camvid_lite()
    monkeypatch.setenv("LRNET_HOME", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    out = tmp_path / "out"
    assert (
        main(
            [
                "predict",
                "--model",
                "camvid-lite",
                str(tmp_path / "a.png"),
                "--out",
                str(out),
                "--backend",
                "torch",
            ]
        )
        == 0
    )
    assert sorted(p.name for p in out.iterdir()) == [
        "a_color.png",
        "a_label.png",
        "a_overlay.png",
        "a_stages.png",
    ]
    labels = np.asarray(Image.open(out / "a_label.png"))
    assert labels.shape == (90, 120) and labels.max() < 11
    make_camvid(tmp_path / "camvid", ["x_0001", "x_0002"], split="val", size=(36, 48))
    args = [
        "evaluate",
        "--model",
        "camvid-lite",
        "--data",
        str(tmp_path / "camvid"),
        "--split",
        "val",
    ]
    assert main([*args, "--num-workers", "0", "--out", str(tmp_path / "val.json")]) == 0
    record = json.loads((tmp_path / "val.json").read_text())
    assert record["checkpoint"] == "camvid-lite" and len(record["stages"]) == 6
    assert record["samples"] == 2
    capsys.readouterr()
    assert main(["evaluate", "camvid-lite", "--model", "camvid-lite"]) == 2
    assert "give the model to score once" in capsys.readouterr().err
    assert main(["evaluate", "--data", str(tmp_path)]) == 2


def test_predictor_from_pretrained_takes_every_source(tmp_path: Path) -> None:
    model, config = _tiny_model(), from_dict(TINY)
    ckpt = tmp_path / "t.pt"
    checkpoint.save_checkpoint(
        ckpt, checkpoint.training_state(model, config, classes=TINY_CLASSES, palette=TINY_PALETTE)
    )
    folder = pretrained.save_pretrained(
        model, config, tmp_path / "f", classes=TINY_CLASSES, palette=TINY_PALETTE
    )
    image = torch.rand(3, 50, 70)
    results = [
        Predictor.from_pretrained(s, backend="torch").predict(image).labels for s in (ckpt, folder)
    ]
    assert np.array_equal(results[0], results[1])
    if _installed(zoo.ZOO["camvid-lite"]):
        predictor = Predictor.from_pretrained("camvid-lite", backend="torch")
        assert predictor.eval_size == (180, 240) and predictor.classes == CAMVID_CLASSES


def test_ship_model_records_only_the_entrys_measured_facts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    spec = importlib.util.spec_from_file_location(
        "ship_model", TESTS.parent / "bench" / "ship_model.py"
    )
    assert spec is not None and spec.loader is not None
    ship = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ship)
    shipped = zoo.facts_path("camvid-lite").read_text()
    monkeypatch.setattr(zoo, "weights_dir", lambda: tmp_path)  # a copy of the facts is edited
    (tmp_path / "camvid-lite.json").write_text(shipped)
    values = {
        "sha256": "a" * 64,
        "parameters": 123,
        "val_miou": [1.0, 2.0, 3.0, 4.0, 5.0, 6.5],
        "cpu_latency_ms": 12.5,
        "latency_note": "measured somehow",
    }
    ship.record_facts("camvid-lite", values)
    filled = dataclasses.replace(zoo.CAMVID_LITE, **zoo.measured("camvid-lite"))
    assert (filled.sha256, filled.parameters, filled.cpu_latency_ms) == ("a" * 64, 123, 12.5)
    assert filled.val_miou == (1.0, 2.0, 3.0, 4.0, 5.0, 6.5)
    assert filled.latency_note == "measured somehow" and filled.classes == zoo.CAMVID_LITE.classes
    kept = ("fast_paths", "fast_paths_note", "graphs", "val_note")  # facts it did not measure
    assert all(getattr(filled, k) == getattr(zoo.CAMVID_LITE, k) for k in kept)
    assert zoo.measured("camvid") == {}  # the other entry has no facts file: untouched


def test_zoo_camvid_classes_are_the_datasets() -> None:
    from lrnet.data.camvid import CAMVID_CLASSES, CAMVID_PALETTE

    entry = zoo.get("camvid-lite")
    assert list(entry.classes) == CAMVID_CLASSES
    assert [tuple(c) for c in entry.palette] == [tuple(c) for c in CAMVID_PALETTE]
