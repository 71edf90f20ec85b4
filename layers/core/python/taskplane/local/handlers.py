"""Load the platform's function handlers (``functions/<name>/handler.py``) as ordinary modules."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import taskplane


def functions_dir() -> Path:
    """Where ``functions/`` lives: ``$TASKPLANE_FUNCTIONS_DIR`` or the checkout this package is in."""
    env = os.environ.get("TASKPLANE_FUNCTIONS_DIR")
    if env:
        return Path(env)
    # layers/core/python/taskplane/__init__.py -> repository root
    return Path(taskplane.__file__).resolve().parents[4] / "functions"


def load_handler(name: str) -> ModuleType:
    """Import ``functions/<name>/handler.py`` once, as module ``functions.<name>.handler``."""
    module_name = f"functions.{name}.handler"
    if module_name in sys.modules:
        return sys.modules[module_name]
    path = functions_dir() / name / "handler.py"
    if not path.is_file():
        raise FileNotFoundError(f"no handler at {path}; set TASKPLANE_FUNCTIONS_DIR to the repo's functions/")
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module
