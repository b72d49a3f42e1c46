"""Recipe machinery: strict pydantic sections, YAML loading and ``--set dotted.key=value`` overrides.

Precedence (lowest first): schema defaults < recipe YAML < ``--set`` overrides < dedicated CLI flags.
Unknown keys are errors everywhere (``extra="forbid"``), so a typo in a recipe fails loudly with the field's path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from empo.errors import RecipeError

M = TypeVar("M", bound=BaseModel)


class Section(BaseModel):
    """Base of every recipe section: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())


def load_yaml(path: Path) -> dict[str, Any]:
    """Read a recipe YAML file into a dict (an empty file is an empty recipe)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"recipe {path} not found; pass an existing YAML file to --recipe")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise RecipeError(f"{path}{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: a recipe must be a mapping of sections, got {type(data).__name__}")
    return data


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"dpo.beta=0.05"`` -> ``(["dpo", "beta"], 0.05)``; the value is parsed as YAML (numbers, lists, null)."""
    import yaml

    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise RecipeError(f"--set {text!r}: expected dotted.key=value, e.g. --set dpo.beta=0.05")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return [k for k in key.strip().split(".")], value


def apply_overrides(data: dict[str, Any], overrides: list[str] | None) -> dict[str, Any]:
    """Return a copy of ``data`` with each ``dotted.key=value`` set (intermediate mappings are created)."""
    import copy

    out = copy.deepcopy(data)
    for text in overrides or []:
        keys, value = parse_override(text)
        node = out
        for k in keys[:-1]:
            nxt = node.setdefault(k, {})
            if not isinstance(nxt, dict):
                raise RecipeError(f"--set {text!r}: {k!r} is not a section")
            node = nxt
        node[keys[-1]] = value
    return out


def set_if_given(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``dotted`` in ``data`` when a dedicated CLI flag was given (``value is not None``)."""
    if value is None:
        return
    keys = dotted.split(".")
    node = data
    for k in keys[:-1]:
        node = node.setdefault(k, {})
    node[keys[-1]] = value


def format_validation_error(exc: ValidationError, source: str) -> str:
    """One line per problem: ``source: field.path: message``."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "<root>"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (a typo?)"
        lines.append(f"{source}: {loc}: {msg}")
    return "; ".join(lines)


def validate(model: type[M], data: dict[str, Any], source: str = "recipe") -> M:
    """Validate ``data`` against ``model``, turning pydantic errors into one-line :class:`RecipeError`s."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise RecipeError(format_validation_error(exc, source)) from None


def to_yaml(model: BaseModel) -> str:
    """The fully resolved recipe as readable YAML (paths as strings, key order as declared)."""
    import yaml

    return yaml.safe_dump(model.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
