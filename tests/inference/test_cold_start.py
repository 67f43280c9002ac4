"""The default path needs no torch: `lrnet predict --model camvid-lite` and
`Predictor.from_pretrained("camvid-lite")` run the shipped graphs on ONNX Runtime or OpenVINO.

Each check runs in a fresh process with torch and torchvision made unimportable (an import of
either raises), and a fresh ``$LRNET_HOME``, so first use (the int8 check on this machine, the
graphs) is covered, not only a warm cache.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lrnet import zoo
from lrnet.inference.verify import sample_paths

# Prepended to each child: any import of torch or torchvision fails with a traceback naming it.
BLOCK_TORCH = textwrap.dedent(
    """
    import sys

    class NoTorch:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torch", "torchvision"):
                raise ImportError(f"the default path imported {name}")
            return None

    sys.meta_path.insert(0, NoTorch())
    """
)


def _run(code: str, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LRNET_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-c", BLOCK_TORCH + textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


@pytest.fixture(scope="module")
def shipped_fp32() -> Path:
    graph = zoo.weights_dir() / "camvid-lite.fp32.onnx"
    assert graph.is_file(), "bench/ship_model.py --graphs-only --name camvid-lite writes it"
    return graph


# `lrnet predict --model camvid-lite INPUT --out OUT` in a child whose torch import fails.
PREDICT_WITHOUT_TORCH = """
import sys
from lrnet.cli import main

code = main(["predict", "--model", "camvid-lite", sys.argv[1], "--out", sys.argv[2]])
assert "torch" not in sys.modules
sys.exit(code)
"""


def _predict_without_torch(tmp_path: Path, source: Path) -> list[str]:
    """``PREDICT_WITHOUT_TORCH`` on ``source`` into ``tmp_path/out``; the names written there."""
    result = _run(PREDICT_WITHOUT_TORCH, tmp_path / "home", str(source), str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr[-3000:]
    return sorted(p.name for p in (tmp_path / "out").iterdir())


def test_lrnet_predict_with_a_zoo_model_imports_no_torch(tmp_path, shipped_fp32) -> None:
    sample = sample_paths()[0]
    written = _predict_without_torch(tmp_path, sample)
    assert written == [f"{sample.stem}_{k}.png" for k in ("color", "label", "overlay", "stages")]
    labels = np.asarray(Image.open(tmp_path / "out" / f"{sample.stem}_label.png"))
    assert labels.shape == Image.open(sample).size[::-1] and len(np.unique(labels)) >= 4


def test_predictor_from_pretrained_imports_no_torch(tmp_path, shipped_fp32) -> None:
    result = _run(
        """
        import sys
        import numpy as np
        from lrnet import Predictor

        predictor = Predictor.from_pretrained("camvid-lite")
        prediction = predictor.predict(sys.argv[1])
        assert isinstance(prediction.labels, np.ndarray), type(prediction.labels)
        assert predictor.backend.name in ("onnxruntime", "openvino"), predictor.runtime
        assert "torch" not in sys.modules
        print(predictor.runtime, prediction.labels.shape)
        """,
        tmp_path / "home",
        str(sample_paths()[0]),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "fp32" in result.stdout or "int8" in result.stdout


def test_the_blocker_catches_a_torch_import(tmp_path) -> None:
    # The checks above would pass vacuously if the blocker let torch through.
    result = _run("import lrnet.models\n", tmp_path / "home")
    assert result.returncode != 0 and "the default path imported torch" in result.stderr


def test_the_shipped_fp32_graph_is_the_shipped_weights(shipped_fp32) -> None:
    from lrnet.inference import graphs
    from lrnet.sources import open_model

    loaded = open_model("camvid-lite")
    assert graphs.packaged(loaded, "fp32") == shipped_fp32
    assert graphs.cached_onnx(loaded) == shipped_fp32


def test_a_video_with_a_zoo_model_imports_no_torch(tmp_path, shipped_fp32) -> None:
    from fractions import Fraction

    from lrnet.inference.video import VideoWriter

    clip = tmp_path / "clip.mp4"
    frame = np.asarray(Image.open(sample_paths()[0]).convert("RGB"))
    with VideoWriter(clip, Fraction(10), Fraction(1, 10)) as writer:
        for index in range(3):
            writer.write(frame, index)
        writer.close()
    written = _predict_without_torch(tmp_path, clip)
    assert "clip_overlay.mp4" in written, written


def test_the_app_serves_its_page_without_torch(tmp_path, shipped_fp32) -> None:
    pytest.importorskip("gradio")
    code = BLOCK_TORCH + textwrap.dedent(
        """
        import sys
        from lrnet.cli import main

        sys.exit(main(["app", "--model", "camvid-lite", "--port", "0"]))
        """
    )
    env = {**os.environ, "LRNET_HOME": str(tmp_path / "home")}
    app = subprocess.Popen(
        [sys.executable, "-c", code],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert app.stdout is not None
        lines = []
        for line in app.stdout:
            lines.append(line)
            if "serving camvid-lite at http://" in line:
                address = line.split(" at ")[1].split()[0]
                with urllib.request.urlopen(address, timeout=60) as page:
                    assert b"<html" in page.read().lower()
                break
        else:
            pytest.fail("the app did not serve:\n" + "".join(lines)[-3000:])
    finally:
        app.send_signal(signal.SIGINT)
        try:
            app.wait(timeout=60)
        except subprocess.TimeoutExpired:
            app.kill()
