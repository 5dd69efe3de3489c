"""A planned batch run on Ray (a local instance by default, or the user's cluster): one task per job, each job's
output written atomically into the batch folder, the manifest rewritten as jobs finish, finished jobs skipped
when the batch runs again."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from tqdm import tqdm

from headsplat.avatar.batch.spec import CACHE, COMMANDS, Job, Plan, job_output
from headsplat.core.errors import ArgumentError, HeadsplatError, MissingDependencyError, OutputError
from headsplat.core.fileio import atomic_dir, atomic_path

RAY_HINT = "headsplat batch needs Ray: pip install 'headsplat[batch]'"
MANIFEST = "batch.json"
_LOCK = ".batch.lock"


@dataclass(frozen=True)
class Resources:
    """What each task asks of the cluster, and how often a job is tried.

    Attributes:
        cpus_per_task: CPUs per job (also its PyTorch threads, at least 1).
        gpus_per_task: GPUs per job (fractions share a GPU); 0: none.
        retries: further tries of a job whose command raised (a bad input fails every time; a flaky one may not).
        system_retries: Ray's ``max_retries``: reruns of a job whose worker died (killed, out of memory).
    """

    cpus_per_task: float = 1.0
    gpus_per_task: float = 0.0
    retries: int = 0
    system_retries: int = 3

    def check(self) -> Resources:
        if not self.cpus_per_task > 0:
            raise ArgumentError("cpus_per_task", f"must be more than 0, got {self.cpus_per_task}")
        if not self.gpus_per_task >= 0:
            raise ArgumentError("gpus_per_task", f"must be 0 or more, got {self.gpus_per_task}")
        if self.retries < 0 or self.system_retries < 0:
            raise ArgumentError("retries", f"must be 0 or more, got {min(self.retries, self.system_retries)}")
        return self


def import_ray():
    """The ``ray`` module, or a one-line :class:`MissingDependencyError` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise MissingDependencyError(RAY_HINT) from None
    return ray


# -- inside a worker ----------------------------------------------------------------------------------------------
def one_line(e: BaseException) -> str:
    """An exception as the manifest's error line."""
    text = str(e) if isinstance(e, HeadsplatError) else f"{type(e).__name__}: {e}"
    text = " ".join(text.split())
    return text if len(text) <= 400 else text[:397] + "..."


def _reset_peak_memory() -> None:
    """Linux: start the process's peak resident set size (VmHWM) afresh, so a reused worker reports this job's."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _peak_memory_mb() -> float:
    """The process's peak resident set size in MB: since :func:`_reset_peak_memory` where Linux allows it, else
    the worker's lifetime peak (``getrusage``)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (2 ** 20 if sys.platform == "darwin" else 1024), 1)


def _summary(value) -> dict:
    """The JSON-safe scalars of what a command returned (its paths as strings)."""
    if not isinstance(value, Mapping):
        return {"returned": type(value).__name__}
    return {str(k): (str(v) if isinstance(v, os.PathLike) else v) for k, v in value.items()
            if v is None or isinstance(v, (bool, int, float, str, os.PathLike))}


def _call(job: Job, function: Callable, out_dir: Path) -> dict:
    """Run ``job``: its output appears complete (the job's folder with ``job.json``) or not at all."""
    output_param = COMMANDS[job.command].output
    if job.shared:
        return _summary(function(**job.args, **{output_param: job.output}, quiet=True))
    with atomic_dir(out_dir / job.name) as tmp:
        t0 = time.perf_counter()
        result = _summary(function(**job.args, **{output_param: str(tmp / job.output)}, quiet=True))
        (tmp / "job.json").write_text(json.dumps({
            "format": "headsplat.batch-job", "version": 1, "name": job.name, "command": job.command, "key": job.key,
            "args": job.args, "output": job.output, "result": result,
            "seconds": round(time.perf_counter() - t0, 2)}, indent=1, default=str))
    return result


def execute(job: Job, function: Callable, out_dir: str, retries: int, threads: int, *upstream: dict) -> dict:
    """One job in a Ray worker: the jobs it reads must have finished; its command is tried up to ``retries`` more
    times when it raises; the outcome is a record for the manifest (a failure is a record, not an exception)."""
    t0 = time.perf_counter()
    record = {"name": job.name, "status": "failed", "seconds": 0.0, "peak_rss_mb": None, "attempts": 0,
              "error": None, "result": None}
    for u in upstream:
        if u["status"] != "done":
            return {**record, "error": f"needs {u['name']}, which failed"}
    import torch

    torch.set_num_threads(max(1, threads))
    _reset_peak_memory()
    for attempt in range(1, retries + 2):
        record["attempts"] = attempt
        try:
            record.update(status="done", error=None, result=_call(job, function, Path(out_dir)))
            break
        except Exception as e:  # noqa: BLE001 - any failure of a job is its record; the batch goes on
            record.update(status="failed", error=one_line(e))
    record.update(seconds=round(time.perf_counter() - t0, 2), peak_rss_mb=_peak_memory_mb())
    return record


# -- in the driver ------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _locked(out_dir: Path) -> Iterator[None]:
    """One batch at a time in ``out_dir`` (where ``fcntl`` exists)."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(out_dir / _LOCK, "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise OutputError(f"{out_dir}: another headsplat batch is running on this folder") from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def clean_partials(out_dir: Path, plan: Plan) -> list[Path]:
    """Remove what interrupted writes left (the temporary siblings of jobs' folders, of shared files and of the
    manifest); only while no job of the batch runs. Returns what was removed."""
    prefixes = {f".{j.name}." for j in plan.jobs.values() if not j.shared} | {f".{MANIFEST}."}
    removed = []
    for folder, names in ((out_dir, prefixes),
                          (out_dir / CACHE / "tracks", {f".{Path(j.output).name}." for j in plan.jobs.values()
                                                        if j.shared})):
        if not folder.is_dir():
            continue
        for p in folder.iterdir():
            if any(p.name.startswith(n) for n in names):
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
                removed.append(p)
    return removed


def finished(out_dir: Path, job: Job) -> dict | None:
    """The record of ``job`` when its output is complete and made with the same key (None: it must run)."""
    if job.shared:
        return {"name": job.name, "status": "done", "seconds": None, "peak_rss_mb": None, "attempts": 0,
                "error": None, "result": None} if Path(job.output).is_file() else None
    try:
        meta = json.loads((out_dir / job.name / "job.json").read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    if not isinstance(meta, dict) or meta.get("key") != job.key:
        return None
    return {"name": job.name, "status": "done", "seconds": meta.get("seconds"), "peak_rss_mb": None, "attempts": 0,
            "error": None, "result": meta.get("result")}


class Manifest:
    """``batch.json``: every job's status, seconds, peak memory and error line, rewritten atomically."""

    def __init__(self, path: Path, plan: Plan, out_dir: Path) -> None:
        self.path, self.plan, self.out_dir = path, plan, out_dir
        previous = {}
        with contextlib.suppress(OSError, json.JSONDecodeError, UnicodeDecodeError, AttributeError, TypeError):
            old = json.loads(path.read_text())
            previous = {**old.get("shared", {}), **old.get("jobs", {})}
        self.records: dict[str, dict] = {}
        for j in plan.jobs.values():
            old = previous.get(j.name)
            self.records[j.name] = {"command": j.command, "entry": j.entry, "key": j.key, "status": "pending",
                                    "seconds": None, "peak_rss_mb": None, "attempts": 0, "error": None,
                                    "output": str(job_output(out_dir, j)),
                                    "runs": (old.get("runs", 0) if isinstance(old, dict) and old.get("key") == j.key
                                             else 0)}
            if isinstance(old, dict) and old.get("key") == j.key and old.get("status") == "done":
                self.records[j.name].update({k: old.get(k) for k in ("seconds", "peak_rss_mb", "attempts")})
        self._written = 0.0
        self.skipped: set[str] = set()
        self._t0 = time.monotonic()

    def update(self, name: str, record: dict, ran: bool = True) -> None:
        """``record`` of a job that ran (or, ``ran=False``, that finished earlier: what the last manifest says of
        it is kept)."""
        r = self.records[name]
        r["status"] = record["status"]
        for k in ("seconds", "peak_rss_mb", "attempts", "error"):
            if ran or r.get(k) is None:
                r[k] = record.get(k)
        if ran:
            r["runs"] += 1
        else:
            self.skipped.add(name)

    def counts(self) -> dict[str, int]:
        """Jobs by status (the shared intermediates not counted)."""
        out = {s: 0 for s in ("done", "failed", "pending", "cancelled")}
        for n, r in self.records.items():
            if not self.plan.jobs[n].shared:
                out[r["status"]] = out.get(r["status"], 0) + 1
        return out

    def write(self, force: bool = True) -> None:
        """Rewrite the file (at most once a second unless ``force``)."""
        now = time.monotonic()
        if not force and now - self._written < 1.0:
            return
        self._written = now
        jobs = {n: r for n, r in self.records.items() if not self.plan.jobs[n].shared}
        shared = {n: r for n, r in self.records.items() if self.plan.jobs[n].shared}
        data = {"format": "headsplat.batch-manifest", "version": 1, "spec": str(self.plan.spec.resolve()),
                "updated": datetime.now(timezone.utc).isoformat(timespec="seconds"), "counts": self.counts(),
                "last_run": {"skipped": len(self.skipped), "seconds": round(time.monotonic() - self._t0, 1)},
                "jobs": jobs, "shared": shared}
        with atomic_path(self.path) as tmp:
            tmp.write_text(json.dumps(data, indent=1))


def _init_ray(ray, address: str | None, num_cpus: int | None, num_gpus: int | None) -> None:
    quiet = dict(log_to_driver=False, logging_level=logging.ERROR)
    if address:
        ray.init(address=address, **quiet)
    else:
        ray.init(num_cpus=num_cpus or os.cpu_count() or 1, num_gpus=num_gpus, include_dashboard=False, **quiet)


def _ray_error_line(ray, e: Exception, job: Job, refs: Mapping[str, Any]) -> str:
    for d in job.deps:
        if d in refs:
            try:
                ray.get(refs[d], timeout=0)
            except Exception:  # noqa: BLE001 - the dependency's own failure is recorded on its line
                return f"needs {d}, which failed"
    if isinstance(e, ray.exceptions.RayTaskError) and e.cause is not None:
        return one_line(e.cause)
    return " ".join(str(e).split())[:400] or type(e).__name__


def run(plan: Plan, out_dir: str | os.PathLike, functions: Mapping[str, Callable], address: str | None = None,
        resources: Resources = Resources(), num_cpus: int | None = None, num_gpus: int | None = None,
        quiet: bool = False) -> dict:
    """Run the jobs of ``plan`` that have not finished (same key) on Ray.

    Args:
        plan: from :func:`headsplat.avatar.batch.spec.plan`.
        out_dir: the batch folder: ``JOB/`` per job, ``_cache/`` for shared intermediates, ``batch.json``.
        functions: command name -> the public function its jobs call.
        address: a Ray cluster to join (``"auto"``, ``"ray://host:10001"``); None: a local instance on this
            machine (``num_cpus``: default all cores; ``num_gpus``: default those Ray finds). A Ray already
            initialised in this process is used as it is.
        resources: per-task CPUs and GPUs, and retries.

    Returns:
        the manifest (what ``batch.json`` holds).

    Raises:
        KeyboardInterrupt: after cancelling the running jobs, removing their partial outputs and writing the
            manifest (unfinished jobs ``cancelled``).
    """
    ray = import_ray()
    resources.check()
    out = Path(out_dir).resolve()
    (out / CACHE / "tracks").mkdir(parents=True, exist_ok=True)
    with _locked(out):
        clean_partials(out, plan)
        manifest = Manifest(out / MANIFEST, plan, out)
        started = not ray.is_initialized()
        if started:
            _init_ray(ray, address, num_cpus, num_gpus)
        try:
            _drive(ray, plan, out, functions, resources, manifest, quiet)
        finally:
            if started:
                ray.shutdown()
            clean_partials(out, plan)
            manifest.write()
    return json.loads(manifest.path.read_text())


def _drive(ray, plan: Plan, out: Path, functions, resources: Resources, manifest: Manifest, quiet: bool) -> None:
    results: dict[str, dict] = {}
    for job in plan.jobs.values():
        rec = finished(out, job)
        if rec is not None:
            results[job.name] = rec
            manifest.update(job.name, rec, ran=False)
    manifest.write()
    task = ray.remote(execute)
    refs: dict[str, Any] = {}
    threads = int(resources.cpus_per_task)
    for job in plan.ordered():
        if job.name in results:
            continue
        upstream = [refs[d] if d in refs else results[d] for d in job.deps]
        gpus = 0 if job.shared else resources.gpus_per_task
        refs[job.name] = task.options(num_cpus=resources.cpus_per_task, num_gpus=gpus,
                                      max_retries=resources.system_retries, name=job.name).remote(
            job, functions[job.command], str(out), resources.retries, threads, *upstream)
    pending = {ref: name for name, ref in refs.items()}
    slots = max(1, int(ray.cluster_resources().get("CPU", 1) // resources.cpus_per_task))
    own = [j.name for j in plan.jobs.values() if not j.shared]
    bar = tqdm(total=len(own), initial=sum(n in results for n in own), desc="batch", unit="job", disable=quiet)
    try:
        while pending:
            ready, rest = ray.wait(list(pending), num_returns=1, timeout=1.0)
            if ready and rest:  # and every other one finished by now, in one call
                ready += ray.wait(rest, num_returns=len(rest), timeout=0)[0]
            for ref in ready:
                name = pending.pop(ref)
                try:
                    rec = ray.get(ref)
                except (ray.exceptions.RayError, HeadsplatError) as e:
                    rec = {"name": name, "status": "failed", "error": _ray_error_line(ray, e, plan.jobs[name], refs),
                           "attempts": 1, "seconds": None, "peak_rss_mb": None}
                results[name] = rec
                manifest.update(name, rec)
                bar.update(0 if plan.jobs[name].shared else 1)
            waiting = [n for n in pending.values() if all(d in results for d in plan.jobs[n].deps)
                       and not plan.jobs[n].shared]
            c = manifest.counts()
            bar.set_postfix(done=c["done"], failed=c["failed"], running=min(len(waiting), slots), refresh=False)
            manifest.write(force=False)
    except KeyboardInterrupt:
        for ref in pending:
            ray.cancel(ref, force=True)
        with contextlib.suppress(Exception):
            ray.wait(list(pending), num_returns=len(pending), timeout=10.0)
        for name in pending.values():
            manifest.records[name]["status"] = "cancelled"
        raise
    finally:
        bar.close()
