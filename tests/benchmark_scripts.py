"""The scripts in benchmarks/ as modules, for tests that run them at a small size."""

import importlib.util
from pathlib import Path

FOLDER = Path(__file__).resolve().parents[1] / "benchmarks"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, FOLDER / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
