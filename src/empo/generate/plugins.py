"""Prompt plug-ins for ``empo generate --plugin NAME`` (HEF-style: small models that steer the LLM's prompt).

A plug-in is an object with two methods:

- ``setup(records) -> None``: batch work before generation (e.g. run a classifier over every context once);
- ``apply(messages, record) -> (messages, metadata)``: the prompt actually sent for one record, and a JSON-able dict
  that ``empo generate`` saves in that record's output line under ``plugin``.

``PLUGINS`` maps a name to a factory (usually the class) called with the recipe's ``generate.plugin_options`` as
keyword arguments. ``apply`` must not modify ``messages`` in place: the output line keeps the original dialogue in
``context`` (evaluation scores against the seeker's real last turn) and the modified prompt in ``prompt``.

Register a new one with::

    @PLUGINS.register("my-plugin")
    class MyPlugin:
        def __init__(self, **options): ...
        def setup(self, records): ...
        def apply(self, messages, record): return new_messages, {"what": "I did"}
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from empo.registry import Registry

Messages = list[dict[str, str]]


class PromptPlugin(Protocol):
    """What ``empo generate`` calls on a plug-in."""

    def setup(self, records: Sequence[dict[str, Any]]) -> None: ...

    def apply(self, messages: Messages, record: dict[str, Any]) -> tuple[Messages, dict[str, Any]]: ...


PLUGINS: Registry[Callable[..., PromptPlugin]] = Registry("prompt plug-in")

#: Modules that register plug-ins into PLUGINS when imported; imported on demand by :func:`get_plugin` (not at
#: start-up: they may import models). A module that is not installed is ignored.
PLUGIN_MODULES: tuple[str, ...] = ("empo.sem.hef",)


def get_plugin(name: str, **options: Any) -> PromptPlugin:
    """Build the plug-in ``name`` with ``options``, importing :data:`PLUGIN_MODULES` first if it is unknown."""
    if name not in PLUGINS:
        import importlib

        for module in PLUGIN_MODULES:
            try:
                importlib.import_module(module)
            except ImportError:
                continue
    return PLUGINS.get(name)(**options)


def add_to_system(messages: Messages, text: str) -> Messages:
    """A copy of ``messages`` with ``text`` appended to the system message (or a new system message first)."""
    out = [dict(m) for m in messages]
    if out and out[0].get("role") == "system":
        out[0]["content"] = f"{out[0]['content']}\n{text}".strip()
    else:
        out.insert(0, {"role": "system", "content": text})
    return out


@PLUGINS.register("oracle-emotion")
class OracleEmotion:
    """A trivial, documented example (and an upper bound for HEF's emotion plug-in, NOT a fair system): tells the
    model the dialogue's GOLD ED emotion label, read from the record's ``emotion`` field.

    Options: ``template`` (a format string with ``{emotion}``).
    """

    def __init__(self, template: str = "The user probably feels {emotion}; keep that in mind.") -> None:
        self.template = template

    def setup(self, records: Sequence[dict[str, Any]]) -> None:
        return None

    def apply(self, messages: Messages, record: dict[str, Any]) -> tuple[Messages, dict[str, Any]]:
        emotion = record.get("emotion")
        if not emotion:
            return messages, {"emotion": None}
        return add_to_system(messages, self.template.format(emotion=emotion)), {"emotion": emotion}


@PLUGINS.register("hef")
def _hef(**options: Any) -> PromptPlugin:
    """HEF (arXiv 2402.11801): a small emotion classifier's top-k emotions to consider first and its emotion-cause
    words to focus on (``empo.sem.hef.HEFPlugin``; options: classifier, k, n_cause, where, show_probs)."""
    from empo.sem.hef import create

    return create(**options)
