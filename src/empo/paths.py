"""Where empo finds its data and keeps its caches.

- Data root: ``$EMPO_DATA_DIR``, by default ``../shared/data`` relative to the repository root.
- Cache: ``$EMPO_CACHE_DIR``, by default ``~/.cache/empo`` (converted models, trained identifiers, ...).
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
# src/empo -> src -> repository root (valid for the editable install that `make install` makes).
REPO_ROOT = PACKAGE_DIR.parent.parent
RESOURCES_DIR = PACKAGE_DIR / "resources"


def data_root() -> Path:
    """The data root: ``$EMPO_DATA_DIR`` or ``<repo>/../shared/data``."""
    env = os.environ.get("EMPO_DATA_DIR")
    if env:
        return Path(env).expanduser()
    return (REPO_ROOT / ".." / "shared" / "data").resolve()


def data_path(*parts: str) -> Path:
    """A path under the data root, e.g. ``data_path("empatheticdialogues")``."""
    return data_root().joinpath(*parts)


def cache_dir(*parts: str) -> Path:
    """A folder under the cache root (``$EMPO_CACHE_DIR`` or ``~/.cache/empo``), created on demand."""
    root = Path(os.environ.get("EMPO_CACHE_DIR", Path.home() / ".cache" / "empo")).expanduser()
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
