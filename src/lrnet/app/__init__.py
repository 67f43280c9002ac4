"""The ``lrnet app`` page: a local Gradio page that shows a model's coarse-to-fine label maps.

A thin layer over ``lrnet.inference.predictor.Predictor`` and ``lrnet.visualize``:

- ``core``: ``App`` checks the input, asks the predictor and draws what it says (no model logic,
  no Gradio), and the page's text.
- ``examples``: the example images and the notes on a zoo model.
- ``page``: ``build_page`` wraps ``App``'s plain methods in Gradio components.

``lrnet.cli.app`` serves it. Gradio is an optional extra (``pip install 'lrnet[app]'``), imported
only when a page is built.
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
