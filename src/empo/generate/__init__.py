"""``empo generate``: answer held-out dialogues with any model, batched (see :mod:`empo.generate.core`).

Kept light: the recipe imports :mod:`empo.generate.config` at CLI start-up, so nothing heavy is imported here.
"""
