"""HEF-style small emotion models as plug-ins to an LLM (Yang et al., arXiv 2402.11801).

- :mod:`empo.sem.model`: a 32-way EmpatheticDialogues emotion classifier (a sentence encoder + a linear head),
  saved as a plain folder and loaded with :func:`load_classifier`; :func:`default_classifier` trains one into the
  cache on first need.
- :mod:`empo.sem.train` / :mod:`empo.sem.evaluate`: ``empo sem train`` and ``empo sem evaluate``.
- :mod:`empo.sem.attribution`: emotion-cause words by occlusion over words (model-agnostic).
- :mod:`empo.sem.hef`: the ``hef`` prompt plug-in for ``empo generate`` (top-k emotions first, cause words).
- :mod:`empo.sem.emotion_qa`: ask an LLM to name the emotion, and parse its answer robustly.

Importing this package is cheap: torch and transformers are imported inside the functions that need them.
"""
