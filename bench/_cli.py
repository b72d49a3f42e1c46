"""What the bench scripts share: running the real `empo` CLI in a subprocess, offline."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run_cli(args: list[str]) -> float:
    """Run ``empo ARGS`` in a subprocess (offline, from the repository root); return its wall time in seconds."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    t0 = time.perf_counter()
    print("$ empo " + " ".join(args), flush=True)
    script = Path(sys.executable).parent / "empo"
    cmd = [str(script)] if script.is_file() else [sys.executable, "-m", "empo.cli"]
    subprocess.run([*cmd, *args], check=True, env=env, cwd=REPO)
    return time.perf_counter() - t0
