"""The CPU benchmark harness (``python -m bench.benchmark``): variants, measurement, report."""
