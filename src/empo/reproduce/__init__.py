"""``empo reproduce``: build-prefs -> (sft) -> align -> generate -> eval -> MMLU -> report, from one recipe.

- :mod:`empo.reproduce.config`: the ``reproduce`` recipe section (stages, data, SFT on/off, MMLU on/off);
- :mod:`empo.reproduce.pipeline`: :func:`~empo.reproduce.pipeline.run_reproduce`, the stage runner (timed,
  resumable: a unit whose recipe is unchanged and whose outputs exist is reused);
- :mod:`empo.reproduce.report`: ``report.md``, ``metrics.png``, ``training.png``, ``report.json``.

Kept light: the recipe imports :mod:`empo.reproduce.config` at CLI start-up.
"""
