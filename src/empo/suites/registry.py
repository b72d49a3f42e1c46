"""The suites: which lm-eval tasks each one runs, with which few-shot count and headline metric.

Every task keeps lm-eval's own definition (prompt, few-shot split and sampler, metric): a suite only lists
task names, the few-shot counts the published leaderboards used, and where the data may come from offline.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from empo.paths import data_path, data_root
from empo.registry import Registry

MMLU = "mmlu"  # a TaskSpec with this name stands for the MMLU group (one lm-eval task per subject)


@dataclass(frozen=True)
class LocalDataset:
    """Where an offline copy of one hub data set may sit, and what it must look like.

    ``files`` maps each lm-eval split the task reads to a JSON-lines file in the hub schema (one row per line,
    the hub's column names). ``places`` are folders, relative to the ``--tasks-data`` folder, searched in order;
    for a ``per_subject`` data set (MMLU) each place holds one folder per subject.
    """

    key: str
    title: str
    hub: str
    places: tuple[str, ...]
    files: dict[str, str]
    fields: tuple[str, ...]
    per_subject: bool = False
    # A file that may sit there in another format -> why lm-eval's task cannot use it.
    other_formats: dict[str, str] = field(default_factory=dict)
    note: str = ""


DATASETS: dict[str, LocalDataset] = {
    d.key: d
    for d in (
        LocalDataset(
            key="mmlu",
            title="MMLU",
            hub="cais/mmlu",
            places=(".", "hf_format", "mmlu/hf_format", "mmlu"),
            files={"test": "test.jsonl", "dev": "dev.jsonl"},
            fields=("question", "choices", "answer"),
            per_subject=True,
            note="one folder per subject with test.jsonl and dev.jsonl (the 5 few-shot examples)",
        ),
        LocalDataset(
            key="arc_challenge",
            title="ARC-Challenge",
            hub="allenai/ai2_arc (ARC-Challenge)",
            places=("arc_challenge", "ai2_arc/ARC-Challenge", "benchmarks/arc_challenge"),
            files={"test": "test.jsonl", "train": "train.jsonl"},
            fields=("question", "choices", "answerKey"),
            note="train.jsonl holds the 25 few-shot examples",
        ),
        LocalDataset(
            key="hellaswag",
            title="HellaSwag",
            hub="Rowan/hellaswag",
            places=("hellaswag", "benchmarks/hellaswag"),
            files={"validation": "validation.jsonl", "train": "train.jsonl"},
            fields=("ctx_a", "ctx_b", "activity_label", "endings", "label"),
            note="lm-eval scores the validation split; train.jsonl holds the 10 few-shot examples",
        ),
        LocalDataset(
            key="truthfulqa_mc",
            title="TruthfulQA (multiple-choice)",
            hub="truthfulqa/truthful_qa (multiple_choice)",
            places=("truthfulqa", "truthful_qa", "benchmarks/truthfulqa"),
            files={"validation": "validation.jsonl"},
            fields=("question", "mc1_targets", "mc2_targets"),
            other_formats={
                "TruthfulQA.csv": "TruthfulQA.csv is the GENERATION format (Best/Correct/Incorrect Answers); "
                "truthfulqa_mc2 needs the multiple_choice config with its mc2_targets, which cannot be rebuilt "
                "from it faithfully",
            },
        ),
        LocalDataset(
            key="winogrande",
            title="Winogrande",
            hub="allenai/winogrande (winogrande_xl)",
            places=("winogrande", "benchmarks/winogrande"),
            files={"validation": "validation.jsonl", "train": "train.jsonl"},
            fields=("sentence", "option1", "option2", "answer"),
            note="lm-eval scores the validation split; train.jsonl holds the 5 few-shot examples",
        ),
        LocalDataset(
            key="gsm8k",
            title="GSM8K",
            hub="openai/gsm8k (main)",
            places=("gsm8k", "benchmarks/gsm8k"),
            files={"test": "test.jsonl", "train": "train.jsonl"},
            fields=("question", "answer"),
            note="lm-eval draws the 5 few-shot examples from train.jsonl",
        ),
    )
}


@dataclass(frozen=True)
class TaskSpec:
    """One member of a suite: an lm-eval task (or the MMLU group) with its suite few-shot count.

    ``metric`` is the lm-eval result key of the headline number (``acc,none``, ``exact_match,strict-match``).
    ``builtin_dir`` is the folder under ``lm_eval/tasks`` that defines the task; ``overrides`` are extra task-YAML
    keys the suite sets (the leaderboard's few-shot split), ``dataset`` the :data:`DATASETS` key offline.
    """

    name: str
    num_fewshot: int
    metric: str
    builtin_dir: str
    dataset: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Suite:
    """A named set of lm-eval tasks.

    Suites with ``tasks`` are generated as task/group YAMLs that ``include:`` lm-eval's built-in task files (so
    the prompts, few-shot handling and metrics are lm-eval's) and change only where the data comes from.
    A ``builtin_group`` suite runs an lm-eval group as it is, from the hub or the HF datasets cache.
    """

    name: str
    title: str
    tasks: tuple[TaskSpec, ...] = ()
    builtin_group: str | None = None
    builtin_dir: str | None = None
    # Subgroups/tasks that must all be present in a builtin group (the task-count check).
    builtin_members: tuple[str, ...] = ()
    # Where offline data is looked for when HF_HUB_OFFLINE=1 and no --tasks-data is given.
    default_data: Callable[[], Path] | None = None
    # The headline metric per task-name prefix for a builtin group (first match wins).
    metric_by_prefix: tuple[tuple[str, str], ...] = ()

    @property
    def offline_datasets(self) -> list[str]:
        return [t.dataset for t in self.tasks if t.dataset]


SUITES: Registry[Suite] = Registry("suite")

SUITES.add(
    "mmlu",
    Suite(
        name="mmlu",
        title="MMLU, 5-shot (57 subjects)",
        tasks=(TaskSpec(MMLU, 5, "acc,none", "mmlu/default", dataset="mmlu"),),
        default_data=lambda: data_path("mmlu"),
    ),
)

# The Open LLM Leaderboard v1, as lm_eval/tasks/benchmarks/openllm.yaml defines it, with TruthfulQA as the
# leaderboard scored it (mc2 only). Headline metrics are the ones that leaderboard reported.
SUITES.add(
    "openllm",
    Suite(
        name="openllm",
        title="Open LLM Leaderboard v1",
        tasks=(
            TaskSpec(
                "arc_challenge",
                25,
                "acc_norm,none",
                "arc",
                dataset="arc_challenge",
                overrides={"fewshot_split": "train"},
            ),
            TaskSpec(
                "hellaswag",
                10,
                "acc_norm,none",
                "hellaswag",
                dataset="hellaswag",
                overrides={"fewshot_split": "train"},
            ),
            TaskSpec("truthfulqa_mc2", 0, "acc,none", "truthfulqa", dataset="truthfulqa_mc"),
            TaskSpec(MMLU, 5, "acc,none", "mmlu/default", dataset="mmlu"),
            TaskSpec(
                "winogrande",
                5,
                "acc,none",
                "winogrande",
                dataset="winogrande",
                overrides={"fewshot_split": "train"},
            ),
            TaskSpec("gsm8k", 5, "exact_match,strict-match", "gsm8k", dataset="gsm8k"),
        ),
        default_data=data_root,
    ),
)

# The Open LLM Leaderboard v2: lm-eval's `leaderboard` group as it is (its own few-shot counts and metrics).
SUITES.add(
    "leaderboard",
    Suite(
        name="leaderboard",
        title="Open LLM Leaderboard v2",
        builtin_group="leaderboard",
        builtin_dir="leaderboard",
        builtin_members=(
            "leaderboard_mmlu_pro",
            "leaderboard_bbh",
            "leaderboard_gpqa",
            "leaderboard_math_hard",
            "leaderboard_ifeval",
            "leaderboard_musr",
        ),
        metric_by_prefix=(
            ("leaderboard_mmlu_pro", "acc,none"),
            ("leaderboard_ifeval", "prompt_level_strict_acc,none"),
            ("leaderboard_math", "exact_match,none"),
            ("leaderboard_", "acc_norm,none"),
        ),
    ),
)
