"""Run a worker job (bonemarrow.benchmarks.worker) in a fresh Python process and read its result."""
from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

from bonemarrow.runtime.json_io import write_json_atomic


class JobError(RuntimeError):
    """A worker process failed; the message is its last error line."""


def run_job(kind: str, job: dict, workdir: Path, timeout: float | None = None) -> dict:
    """Write JOB.json, run the worker on it, return its result dict."""
    name = f"{kind}-{uuid.uuid4().hex[:8]}"
    job_path, result_path = workdir / f"{name}.job.json", workdir / f"{name}.result.json"
    write_json_atomic(job_path, {**job, "kind": kind, "result": str(result_path)}, indent=None)
    proc = subprocess.run([sys.executable, "-m", "bonemarrow.benchmarks.worker", str(job_path)],
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0 or not result_path.exists():
        lines = [line for line in (proc.stderr or "").splitlines() if line.strip()]
        raise JobError(f"{kind} worker failed (exit {proc.returncode}): {lines[-1] if lines else 'no output'}")
    return json.loads(result_path.read_text())
