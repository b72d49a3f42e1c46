"""``empo eval``: response metrics (diff-Epitome, Emp-F1, BERTScore, diversity, valence) over GEN.jsonl files.

- :mod:`empo.evaluation.metrics`: the metrics, pure functions over arrays and texts, in a registry;
- :mod:`empo.evaluation.scoring`: reading GEN files, running the scorers (identifiers, BERTScore, VADER, NRC-VAD)
  once per input, and aggregating overall and per ED emotion;
- :mod:`empo.evaluation.report`: the markdown comparison table and the PNG chart;
- :mod:`empo.evaluation.baseline`: computes the BERTScore rescaling baseline shipped for the default model.

Kept light: the recipe imports :mod:`empo.evaluation.config` at CLI start-up, so nothing heavy is imported here.
"""
