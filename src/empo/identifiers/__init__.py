"""Empathy identifiers: EPITOME's three mechanisms (ER, IP, EX; levels 0/1/2), trained by empo.

Use::

    from empo.identifiers import MECHANISMS, load_identifiers

    ident = load_identifiers()                      # the default folder; trained on first need
    probs = ident.predict_proba(seekers, responses)  # {"ER": (n, 3), "IP": (n, 3), "EX": (n, 3)}
    levels = ident.predict(seekers, responses)       # {"ER": (n,), ...} with values 0/1/2

Importing this package is cheap (no torch); the network code loads on first use.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from empo.errors import DataError
from empo.identifiers.data import LEVELS, MECHANISMS

if TYPE_CHECKING:
    from empo.identifiers.model import Identifiers

__all__ = [
    "DEFAULT_TRAIN_MINUTES_CPU",
    "LEVELS",
    "MECHANISMS",
    "Identifiers",
    "MissingTrainingData",
    "default_identifiers_dir",
    "load_identifiers",
]

# Measured for the default configuration on 2 CPU cores (README, "Empathy identifiers").
DEFAULT_TRAIN_MINUTES_CPU = 10

_LOADED: dict[tuple[str, str], Any] = {}
_LOCK = threading.Lock()


class MissingTrainingData(DataError):
    """The default identifiers are missing and cannot be trained here (no EPITOME under the data root)."""


def default_identifiers_dir() -> Path:
    """``$EMPO_CACHE_DIR/identifiers/default`` (``~/.cache/empo/identifiers/default``)."""
    from empo.paths import cache_dir

    return cache_dir("identifiers", "default")


def _is_trained(path: Path) -> bool:
    from empo.identifiers.model import INDEX_FILE

    return (path / INDEX_FILE).is_file()


def load_identifiers(
    path: Path | str | None = None, *, train_if_missing: bool = True, device: str = "auto"
) -> Identifiers:
    """Load trained identifiers (once per folder and device; later calls return the same object).

    ``path=None`` is the default folder (:func:`default_identifiers_dir`). When the folder holds no identifiers and
    ``train_if_missing`` is true, they are trained there first with the default configuration on EPITOME (a
    one-off of about ``DEFAULT_TRAIN_MINUTES_CPU`` minutes on CPU); otherwise an :class:`~empo.errors.EmpoError`
    says how to train them.
    """
    from empo.errors import EmpoError
    from empo.log import get_logger

    log = get_logger("identifiers")
    folder = Path(path).expanduser() if path is not None else default_identifiers_dir()
    key = (str(folder.resolve()), device)
    with _LOCK:
        if key in _LOADED:
            return _LOADED[key]
        if not _is_trained(folder):
            if folder.exists() and not folder.is_dir():
                raise EmpoError(f"{folder} is a file, not an identifiers folder")
            if not train_if_missing:
                raise EmpoError(
                    f"no empathy identifiers found at {folder}; train them with `empo identifiers train"
                    + ("" if path is None else f" --out {folder}")
                    + "` (or call load_identifiers(train_if_missing=True))"
                )
            from empo.identifiers.config import IdentifiersConfig
            from empo.identifiers.data import default_split

            cfg = IdentifiersConfig(device=device)
            needed = [
                Path(cfg.train_csv or default_split("train")),
                Path(cfg.val_csv or default_split("val")),
            ]
            missing = [f for f in needed if not f.is_file()]
            if missing:
                raise MissingTrainingData(
                    f"no empathy identifiers at {folder}, and the EPITOME data that trains them is missing "
                    f"({', '.join(str(m) for m in missing)}): set EMPO_DATA_DIR to a data root with "
                    "epitome/empo_splits/, or train them elsewhere with `empo identifiers train` and pass the folder"
                )
            if folder.is_dir() and any(folder.iterdir()):
                raise EmpoError(
                    f"{folder} is not empty but holds no empathy identifiers (identifiers.json missing); "
                    "empty it or point to another folder"
                )
            log.warning(
                "no empathy identifiers found at %s; training them now on EPITOME (takes ~%d min on CPU); "
                "run `empo identifiers train` to do it ahead",
                folder,
                DEFAULT_TRAIN_MINUTES_CPU,
            )
            from empo.identifiers.train import train_identifiers

            train_identifiers(cfg, folder, overwrite=True)
        from empo.identifiers.model import Identifiers

        ident = Identifiers.load(folder, device=device)
        _LOADED[key] = ident
        return ident


def __getattr__(name: str) -> Any:
    if name == "Identifiers":
        from empo.identifiers.model import Identifiers

        return Identifiers
    raise AttributeError(f"module 'empo.identifiers' has no attribute {name!r}")
