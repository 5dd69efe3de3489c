"""``headsplat batch``: the jobs of a spec file (create, animate, track, eval, generate) run as Ray tasks through
the same public functions as the commands (:mod:`headsplat.avatar.batch`), and eval jobs' reports aggregated."""

from __future__ import annotations

import json
import os
from pathlib import Path

from headsplat.api.avatars import create
from headsplat.api.evaluation import eval_cross, eval_reenact
from headsplat.api.face_tracking import track
from headsplat.api.generation import generate
from headsplat.api.playback import animate
from headsplat.avatar.batch import Resources, import_ray, plan, run
from headsplat.avatar.batch.shared import driver_track_args
from headsplat.core.errors import OutputError
from headsplat.core.fileio import check_writable
from headsplat.eval.report import aggregate, write_aggregate

#: the command each spec job names -> the public function it calls
FUNCTIONS = {"create": create, "animate": animate, "track": track, "eval reenact": eval_reenact,
             "eval cross": eval_cross, "generate": generate}


def batch(spec: str | os.PathLike, output_dir: str | os.PathLike, address: str | None = None,
          gpus_per_task: float = 0.0, cpus_per_task: float = 1.0, retries: int = 0, quiet: bool = False,
          num_cpus: int | None = None, num_gpus: int | None = None, system_retries: int = 3) -> dict:
    """Run the jobs of ``spec`` (docs/batch.md) on Ray; jobs finished by an earlier run with the same arguments
    and inputs are skipped, failed ones run again.

    Args:
        spec: a ``.yaml``/``.yml``, ``.json`` or ``.csv`` file of jobs; relative paths in it are relative to it.
        output_dir: the batch folder: ``JOB/`` per job (written atomically), ``batch.json`` (the manifest),
            ``_cache/`` (shared tracked drivers), ``report.json``/``report.md`` (the eval jobs' aggregate).
        address: a Ray cluster to join (``"auto"``, ``"ray://HOST:10001"``); None: a local instance using
            ``num_cpus`` cores (default all) and ``num_gpus`` GPUs (default those Ray finds).
        gpus_per_task, cpus_per_task: what each job asks for.
        retries: further tries of a job whose command raised. system_retries: reruns of a job whose worker died.

    Returns:
        ``manifest`` (what batch.json holds) and ``reports`` (the aggregated report files written).

    Raises:
        MissingDependencyError: Ray is not installed (one line: ``pip install 'headsplat[batch]'``).
        SpecError: the spec's first problem (file, job, field), before anything is written.
        KeyboardInterrupt: after the running jobs were cancelled and the manifest written.
    """
    import_ray()
    out = Path(output_dir)
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is not a folder")
    if not out.exists():
        check_writable(out)
    jobs = plan(spec, FUNCTIONS, out, share_tracks=driver_track_args)
    out.mkdir(exist_ok=True)
    manifest = run(jobs, out, FUNCTIONS, address, Resources(cpus_per_task, gpus_per_task, retries, system_retries),
                   num_cpus, num_gpus, quiet)
    return {"manifest": manifest, "reports": write_eval_reports(out, manifest, Path(spec).name)}


def write_eval_reports(out: Path, manifest: dict, title: str) -> list[Path]:
    """The batch's eval jobs' reports aggregated, one per protocol: ``report.json``/``report.md`` (or
    ``report-self``/``report-cross`` when the batch has both)."""
    by_protocol: dict[str, tuple[dict, dict]] = {}
    for name, rec in manifest["jobs"].items():
        if not rec["command"].startswith("eval "):
            continue
        protocol = "self" if rec["command"] == "eval reenact" else "cross"
        reports, failed = by_protocol.setdefault(protocol, ({}, {}))
        if rec["status"] == "done":
            reports[name] = json.loads((Path(rec["output"]) / "report.json").read_text())
        else:
            failed[name] = rec["error"] or rec["status"]
    written = []
    for protocol, (reports, failed) in by_protocol.items():
        stem = "report" if len(by_protocol) == 1 else f"report-{protocol}"
        written += write_aggregate(aggregate(reports, failed), out, stem, title)
    return written
