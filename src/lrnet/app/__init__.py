"""The ``lrnet app`` page: a local Gradio page that shows a model's coarse-to-fine label maps.

``core``: ``App``, the work as plain methods over ``Predictor`` (no Gradio); ``examples``: the
example images and a zoo model's notes; ``page``: ``build_page``, the Gradio components. Served
by ``lrnet.cli.app``; Gradio (``pip install 'lrnet[app]'``) is imported when a page is built.
"""

from lrnet.app.core import App, Labelled, View, check_opacity, runtime_text, stage_index
from lrnet.app.examples import examples_for, model_notes, write_examples, write_street_frames
from lrnet.app.page import build_page

__all__ = [
    "App",
    "Labelled",
    "View",
    "build_page",
    "check_opacity",
    "examples_for",
    "model_notes",
    "runtime_text",
    "stage_index",
    "write_examples",
    "write_street_frames",
]
