"""General ability through lm-eval: MMLU 5-shot and the Open LLM Leaderboard (v1 and v2), with or without the hub.

- :mod:`empo.suites.registry`: the suites (their lm-eval tasks, few-shot counts, headline metrics, offline data).
- :mod:`empo.suites.data`: offline data folders and the generated task/group YAMLs.
- :mod:`empo.suites.runner`: the lm-eval run, the task-count checks, the results folder.
- :mod:`empo.suites.summary` / :mod:`empo.suites.compare`: ``metrics.json`` and ``--compare``.
- :mod:`empo.suites.cli`: ``suite_main`` / ``compare_main``, called by ``empo eval``.
"""
