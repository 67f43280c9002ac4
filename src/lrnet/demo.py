"""``lrnet demo``: synthetic data, a small LRN trained on CPU, every stage evaluated, a report."""

from __future__ import annotations

import json
import time
from importlib import resources
from pathlib import Path

from lrnet import data
from lrnet._files import OVERWRITE_ADVICE, check_replaceable, write_text
from lrnet.config import Config, load_config
from lrnet.evaluate import evaluate, evaluation_record
from lrnet.inference.predictor import Predictor
from lrnet.pretrained import load_model
from lrnet.report import draw_panels, format_tables, write_report
from lrnet.train import BEST, train


def demo_config(out_dir: Path, overrides: list[str]) -> Config:
    """The packaged synthetic recipe, writing into ``out_dir``."""
    with resources.as_file(resources.files("lrnet") / "configs" / "synthetic.yaml") as path:
        return load_config(path, [f"run.out_dir={out_dir}", *overrides])


def run_demo(out_dir: Path, overrides: list[str], overwrite: bool = False) -> Path:
    """Train, evaluate and predict; return the report's path.

    Files in ``out_dir`` that lrnet did not write (a ``report.html``, ``evaluation.json`` or
    ``config.yaml`` of the user's) are an error before anything runs, unless ``overwrite``;
    ``overwrite`` also replaces an earlier demo's run (``lrnet train --overwrite``).
    """
    config = demo_config(out_dir, overrides)
    for name in ("report.html", "evaluation.json"):
        check_replaceable(out_dir / name, overwrite=overwrite, advice=OVERWRITE_ADVICE)
    start = time.perf_counter()
    train(config, overwrite=overwrite)
    train_seconds = time.perf_counter() - start

    loaded = load_model(out_dir / BEST)
    val = data.build(loaded.config.data, config.data.val_split)
    loader = data.loader(val, 4, config.data.num_workers)
    stages = evaluate(
        loaded.model, loader, len(loaded.classes), ignore_index=config.data.ignore_index
    )
    evaluation = evaluation_record(
        stages,
        loaded.classes,
        checkpoint=str(out_dir / BEST),
        dataset=config.data.dataset,
        split=config.data.val_split,
        train_seconds=round(train_seconds, 1),
    )
    write_text(out_dir / "evaluation.json", json.dumps(evaluation, indent=2))

    predictor = Predictor.from_loaded(loaded)
    panels = draw_panels(predictor, val, out_dir / "predictions")
    report_path = write_report(
        out_dir,
        history_path=out_dir / "history.jsonl",
        evaluation=evaluation,
        panels=panels,
        overwrite=overwrite,
    )
    print(f"\ntrained in {train_seconds / 60:.1f} min; validation ({len(val)} images):\n")
    print(format_tables(evaluation))
    return report_path
