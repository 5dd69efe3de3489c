"""A batch spec read and checked whole before anything runs: its entries (YAML, JSON or CSV) expanded into jobs,
each the arguments of one public command, with paths resolved, references to other jobs' outputs and a key
(the job's name, its arguments and its inputs' contents) that makes a batch resumable."""

from __future__ import annotations

import csv
import glob
import hashlib
import inspect
import itertools
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from headsplat.core.errors import HeadsplatError, MissingDependencyError

#: the folder of the shared intermediates (tracked drivers) inside a batch's output folder
CACHE = "_cache"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
# Files hashed by size and modification time instead of their bytes: weights and model files of gigabytes.
_STAT_HASHED = ("weights", "flame_model", "assets")


class SpecError(HeadsplatError):
    """A batch spec that cannot run; the message names the spec file, the job and the field."""


@dataclass(frozen=True)
class Command:
    """What the batch knows of one public command.

    Attributes:
        name: as the spec writes it (``"eval reenact"``).
        required: fields every job of it must give (``"a|b"``: one of them).
        paths: fields that hold input paths (resolved against the spec's folder, checked to exist, hashed).
        output: the function's output parameter; ``output_name`` what it is called in the job's folder
            (``{job}`` is the job's name).
        produces: what the output is, for references from other jobs (``avatar``, ``video``, ``track``, ...).
        options: the registry command whose options it takes (``create``, ``reenact``; ``generate``: the
            generators'), None: none.
    """

    name: str
    required: tuple[str, ...]
    paths: tuple[str, ...]
    output: str
    output_name: str
    produces: str
    options: str | None


COMMANDS: dict[str, Command] = {c.name: c for c in (
    Command("create", ("inputs|views",), ("inputs", "views", "flame_model", "flame_embedding", "weights"), "output",
            "{job}.avatar", "avatar", "create"),
    Command("animate", ("avatar", "driver"), ("avatar", "driver", "flame_model", "weights"), "output",
            "{job}.mp4", "video", "animate"),
    Command("track", ("input",), ("input", "flame_model", "flame_embedding"), "output", "{job}.track", "track",
            None),
    Command("eval reenact", ("video",), ("video", "avatar_from", "flame_model", "flame_embedding", "weights"),
            "output_dir", "report", "report", "reenact"),
    Command("eval cross", ("source", "driver"), ("source", "driver", "flame_model", "flame_embedding", "weights"),
            "output_dir", "report", "report", "cross"),
    Command("generate", (), ("source", "flame_model", "weights", "assets", "labels", "motion_weights", "driver"),
            "output", "views", "views",
            "generate"),
)}
#: which outputs of other jobs a field may name (``"@job"``)
REFERABLE = {"avatar": ("avatar",), "source": ("avatar",), "avatar_from": ("avatar",), "views": ("views",),
             "driver": ("track", "video"), "input": ("video",), "video": ("video",), "inputs": ("video",)}
# Fields the batch sets itself.
_RESERVED = ("output", "output_dir", "quiet", "options")


@dataclass(frozen=True)
class Job:
    """One command to run.

    Attributes:
        name: unique in the batch; its output folder's name.
        entry: the spec entry it comes from (several jobs when it has ``foreach``).
        command: a key of :data:`COMMANDS`.
        args: the function's keyword arguments, paths absolute (the output ones excluded).
        deps: jobs whose outputs it reads.
        key: a hash of the name, the arguments and the inputs' contents: a finished job with the same key is not
            run again.
        output: where the function writes, relative to the job's folder (or, for a shared intermediate, the
            absolute final path).
        shared: a shared intermediate (a tracked driver in ``_cache/``): no folder of its own.
    """

    name: str
    entry: str
    command: str
    args: Mapping[str, Any]
    deps: tuple[str, ...]
    key: str
    output: str
    shared: bool = False


@dataclass
class Plan:
    """The jobs of a spec in an order where each comes after the jobs it reads (shared intermediates first)."""

    spec: Path
    jobs: dict[str, Job] = field(default_factory=dict)

    def ordered(self) -> list[Job]:
        return list(self.jobs.values())


def read_entries(path: Path) -> tuple[list[dict], dict]:
    """(job entries, per-command defaults) of a spec file: YAML (``.yaml``/``.yml``, needs PyYAML, which Ray
    installs), JSON or CSV (one job per row; ``a;b`` is a list).

    Raises:
        SpecError: unreadable, another suffix, not the expected structure.
    """
    if not path.is_file():
        raise SpecError(f"{path}: batch spec not found")
    suffix = path.suffix.lower()
    text = path.read_text()
    if suffix == ".csv":
        return [_csv_row(path, i, row) for i, row in enumerate(csv.DictReader(text.splitlines()), start=2)], {}
    if suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise MissingDependencyError(f"{path}: a YAML spec needs PyYAML (pip install pyyaml); or write it as "
                                         "JSON or CSV") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise SpecError(f"{path}: not valid YAML ({' '.join(str(e).split())})") from None
    elif suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise SpecError(f"{path}: not valid JSON ({e})") from None
    else:
        raise SpecError(f"{path}: a batch spec ends in .yaml, .yml, .json or .csv")
    if isinstance(data, list):
        data = {"jobs": data}
    if not isinstance(data, dict) or not isinstance(data.get("jobs"), list):
        raise SpecError(f"{path}: expected a list of jobs, or a mapping with 'jobs' (a list) and optional "
                        "'defaults'")
    unknown = sorted(set(data) - {"jobs", "defaults"})
    if unknown:
        raise SpecError(f"{path}: unknown top-level key {unknown[0]!r} (expected jobs, defaults)")
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict) or not all(isinstance(v, dict) for v in defaults.values()):
        raise SpecError(f"{path}: defaults: expected a mapping of command -> its default fields")
    for k in defaults:
        if k not in COMMANDS:
            raise SpecError(f"{path}: defaults: unknown command {k!r} (choose {', '.join(COMMANDS)})")
    for i, e in enumerate(data["jobs"]):
        if not isinstance(e, dict):
            raise SpecError(f"{path}: job {i + 1}: expected a mapping of fields, got {type(e).__name__}")
    return data["jobs"], defaults


def _csv_value(text: str):
    text = text.strip()
    if ";" in text:
        return [_csv_value(t) for t in text.split(";") if t.strip()]
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def _csv_row(path: Path, line: int, row: dict) -> dict:
    if None in row:
        raise SpecError(f"{path}: line {line}: more cells than columns")
    return {k.strip(): _csv_value(v) for k, v in row.items() if k and v is not None and v.strip() != ""}


class _Hasher:
    """Content hashes of input files and folders, each computed once per process."""

    def __init__(self) -> None:
        self._seen: dict[tuple, str] = {}

    def __call__(self, path: Path, by_stat: bool = False) -> str:
        st = path.stat()
        k = (str(path), st.st_size, st.st_mtime_ns, by_stat)
        if k not in self._seen:
            if by_stat:
                self._seen[k] = f"stat:{st.st_size}:{st.st_mtime_ns}"
            elif path.is_dir():
                h = hashlib.sha256()
                for p in sorted(path.rglob("*")):
                    if p.is_file():
                        h.update(str(p.relative_to(path)).encode() + b"\0" + self(p).encode())
                self._seen[k] = h.hexdigest()
            else:
                h = hashlib.sha256()
                with open(path, "rb") as f:
                    for chunk in iter(lambda: f.read(1 << 20), b""):
                        h.update(chunk)
                self._seen[k] = h.hexdigest()
        return self._seen[k]


def _stem(item) -> str:
    s = Path(str(item[0] if isinstance(item, list) and item else item)).name
    s = s.split(".", 1)[0] if not s.startswith("@") else s[1:].rsplit(".", 1)[-1]
    return re.sub(r"[^A-Za-z0-9_-]+", "-", s).strip("-") or "x"


class _Planner:
    def __init__(self, spec: Path, functions: Mapping[str, Callable], out_dir: Path) -> None:
        self.spec, self.functions, self.out_dir = spec, functions, out_dir
        self.base = spec.parent.resolve()
        self.hash = _Hasher()
        self.groups: dict[str, list[str]] = {}

    def fail(self, job: str | None, fld: str | None, message: str) -> SpecError:
        where = "".join(f"{w}: " for w in (f"job {job}" if job else None, fld) if w)
        return SpecError(f"{self.spec}: {where}{message}")

    # -- entries -> raw jobs ------------------------------------------------------------------------------------
    def expand(self, entries: list[dict], defaults: dict) -> list[tuple[str, str, str, dict]]:
        """(name, entry, command, fields) of every job, ``foreach`` expanded (``"@entry"``: one value per job of
        that entry, so entries are expanded once the ones they name are), names checked unique."""
        names = set()
        for i, e in enumerate(entries):
            name = e.get("name")
            if not isinstance(name, str) or not _NAME.match(name) or name == CACHE:
                raise self.fail(None, None, f"job {i + 1}: 'name' must be given, letters, digits, '_', '-' or '.', "
                                "not starting with '.' or '_'" + (f" (got {name!r})" if name is not None else ""))
            if name in names:
                raise self.fail(name, "name", "two jobs have this name")
            names.add(name)
            cmd = e.get("command")
            if cmd not in COMMANDS or cmd not in self.functions:
                allowed = ", ".join(c for c in COMMANDS if c in self.functions)
                raise self.fail(name, "command", f"expected one of {allowed}, got {cmd!r}")
            foreach = e.get("foreach")
            if foreach is not None and (not isinstance(foreach, dict) or not foreach):
                raise self.fail(name, "foreach", "expected a mapping of field -> a list, a folder or a pattern")
        done: dict[int, list] = {}
        while len(done) < len(entries):
            progress = False
            for i, e in enumerate(entries):
                if i in done:
                    continue
                waits = [v[1:] for v in (e.get("foreach") or {}).values()
                         if isinstance(v, str) and v.startswith("@") and v[1:] not in self.groups]
                if any(w in names for w in waits):
                    continue
                done[i] = self._expand_one(e, defaults)
                progress = True
            if not progress:
                stuck = next(e["name"] for i, e in enumerate(entries) if i not in done)
                raise self.fail(stuck, "foreach", "its references to other jobs form a cycle")
        raw, seen = [], set()
        for i in range(len(entries)):
            for job, entry, cmd, f in done[i]:
                unique, n = job, 2
                while unique in seen or (unique != entry and unique in names):
                    unique, n = f"{job}-{n}", n + 1
                seen.add(unique)
                raw.append((unique, entry, cmd, f))
        return raw

    def _expand_one(self, e: dict, defaults: dict) -> list[tuple[str, str, str, dict]]:
        name, cmd = e["name"], e["command"]
        fields = {**defaults.get(cmd, {}), **{k: v for k, v in e.items() if k not in ("name", "command", "foreach")}}
        foreach = e.get("foreach")
        if foreach is None:
            items = [(name, name, cmd, fields)]
        else:
            lists = {k: self._values(name, k, v) for k, v in foreach.items()}
            items = [(f"{name}." + ".".join(_stem(v) for v in combo), name, cmd, {**fields, **dict(zip(lists, combo))})
                     for combo in itertools.product(*lists.values())]
        self.groups[name] = [j for j, *_ in items]
        return items

    def _values(self, job: str, fld: str, v) -> list:
        if isinstance(v, list):
            if not v:
                raise self.fail(job, f"foreach.{fld}", "the list is empty")
            return v
        if not isinstance(v, str):
            raise self.fail(job, f"foreach.{fld}", f"expected a list, a folder or a pattern, got {type(v).__name__}")
        if v.startswith("@"):
            if v[1:] not in self.groups:
                raise self.fail(job, f"foreach.{fld}", f"{v}: no job of that name in the spec")
            return [f"@{j}" for j in self.groups[v[1:]]]
        p = self.base / v
        if any(c in v for c in "*?["):
            found = sorted(glob.glob(str(p)))
        elif p.is_dir() and p.suffix != ".avatar":
            found = sorted(str(c) for c in p.iterdir() if not c.name.startswith("."))
        else:
            raise self.fail(job, f"foreach.{fld}", f"{p}: not a folder or a pattern (a list: [a, b])")
        if not found:
            raise self.fail(job, f"foreach.{fld}", f"{v}: nothing matches")
        return found

    # -- checks ---------------------------------------------------------------------------------------------------
    def check_fields(self, name: str, cmd: Command, fields: dict) -> None:
        params = inspect.signature(self.functions[cmd.name]).parameters
        named = {p for p, v in params.items() if v.kind not in (v.VAR_KEYWORD, v.VAR_POSITIONAL)}
        takes_options = any(v.kind == v.VAR_KEYWORD for v in params.values())
        known = (named | (set(_option_names(cmd.options)) if takes_options else set())) - set(_RESERVED)
        for k in fields:
            if k not in known:
                raise self.fail(name, k, f"not a field of {cmd.name} (it takes {', '.join(sorted(known))})")
        for k in cmd.required:
            first, *others = k.split("|")
            if all(fields.get(f) in (None, "", []) for f in (first, *others)):
                alone = "".join(f" (or {o} alone)" for o in others)
                raise self.fail(name, first, f"{cmd.name} needs it{alone}")

    def resolve_paths(self, name: str, cmd: Command, fields: dict, produced: dict[str, str]) -> tuple[dict, list]:
        """``fields`` with every input path absolute and checked, references replaced by the outputs they name;
        and the jobs it reads."""
        out, deps = dict(fields), []
        for k in cmd.paths:
            if fields.get(k) is None:
                continue
            values = fields[k] if isinstance(fields[k], list) else [fields[k]]
            resolved = []
            for v in values:
                if not isinstance(v, (str, os.PathLike)):
                    raise self.fail(name, k, f"expected a path, got {type(v).__name__}")
                v = str(v)
                if v.startswith("@"):
                    ref = v[1:]
                    if ref in self.groups and len(self.groups[ref]) == 1:
                        ref = self.groups[ref][0]
                    if ref not in produced:
                        many = len(self.groups.get(ref, ()))
                        raise self.fail(name, k, f"{v}: names {many} jobs; give it in foreach" if many else
                                        f"{v}: no job of that name in the spec")
                    if ref == name:
                        raise self.fail(name, k, f"{v}: a job cannot read its own output")
                    if produced[ref] not in REFERABLE.get(k, ()):
                        raise self.fail(name, k, f"{v}: that job writes a {produced[ref]}, not what {k} takes")
                    deps.append(ref)
                    resolved.append("@" + ref)
                    continue
                p = Path(v).expanduser()
                p = p if p.is_absolute() else self.base / p
                if not p.exists():
                    raise self.fail(name, k, f"{p}: not found")
                resolved.append(str(p))
            out[k] = resolved if isinstance(fields[k], list) else resolved[0]
        return out, deps

    def check_options(self, name: str, cmd: Command, args: dict, method_of_avatar: Callable[[str], str]) -> None:
        """The method's or generator's options, checked as the command will (unknown names, choices)."""
        from headsplat.avatar.generators import get_generator
        from headsplat.avatar.methods import get_method
        from headsplat.core.errors import ArgumentError

        if cmd.options is None:
            return
        own = set(inspect.signature(self.functions[cmd.name]).parameters) - set(_option_names(cmd.options))
        given = {k: v for k, v in args.items() if k not in own or k in _option_names(cmd.options)}
        try:
            if cmd.options == "generate":
                get_generator(args.get("model", "oracle")).accept(given)
            else:
                method = method_of_avatar(args["avatar"]) if cmd.name == "animate" else args.get("method", "headsplat")
                given.pop("method", None)
                get_method(method).accept(cmd.options, given)
        except ArgumentError as e:
            raise self.fail(name, e.param, e.message) from None
        except HeadsplatError as e:
            raise self.fail(name, None, str(e)) from None


def _option_names(command: str | None) -> tuple[str, ...]:
    from headsplat.avatar.generators import GENERATORS
    from headsplat.avatar.methods import command_options

    if command is None:
        return ()
    return tuple(GENERATORS.command_options("generate") if command == "generate" else command_options(command))


def plan(spec: str | os.PathLike, functions: Mapping[str, Callable], out_dir: str | os.PathLike,
         share_tracks: Callable[[Job, Job | None], dict | None] | None = None) -> Plan:
    """Every job of ``spec``, checked (fields, input paths, references, the methods' options) and keyed.

    Args:
        spec: the spec file.
        functions: command name -> the public function each job of it calls (only these commands are allowed).
        out_dir: the batch's output folder (the outputs that references name live there).
        share_tracks: ``share_tracks(animate_job, the job that makes its avatar or None)``: the ``track``
            arguments of its driver when the avatar's method would track it that way (then a driver that several
            jobs use with the same arguments is tracked once, by a shared job); None: never.

    Raises:
        SpecError: the first problem, one line naming the spec file, the job and the field.
    """
    spec = Path(spec)
    out_dir = Path(out_dir).resolve()
    p = _Planner(spec, functions, out_dir)
    entries, defaults = read_entries(spec)
    raw = p.expand(entries, defaults)
    produced = {n: COMMANDS[c].produces for n, _, c, _ in raw}
    by_name = {n: (e, c, f) for n, e, c, f in raw}
    result = Plan(spec)
    resolved: dict[str, tuple[dict, list]] = {}
    for name, entry, cmd, f in raw:
        c = COMMANDS[cmd]
        p.check_fields(name, c, f)
        resolved[name] = p.resolve_paths(name, c, f, produced)

    def method_of_avatar(path: str) -> str:
        from headsplat.avatar.methods import method_of

        if path.startswith("@"):
            return by_name[path[1:]][2].get("method", "headsplat")
        return method_of(path).name

    for name, (args, _) in resolved.items():
        p.check_options(name, COMMANDS[by_name[name][1]], args, method_of_avatar)
    order = _topological(p, {n: d for n, (_, d) in resolved.items()})
    keys: dict[str, str] = {}
    sharing: dict[str, Job] = {}
    outputs: dict[str, str] = {}  # output path -> the job writing it
    for name in order:
        entry, cmd, _ = by_name[name]
        args, deps = resolved[name]
        c = COMMANDS[cmd]
        keys[name] = _key(name, cmd, args, c, p.hash, keys)
        job = Job(name, entry, cmd, _substitute(args, out_dir, result.jobs), tuple(dict.fromkeys(deps)), keys[name],
                  c.output_name.format(job=name))
        if share_tracks is not None and cmd == "animate":
            maker = outputs.get(job.args["avatar"])
            track_args = share_tracks(job, result.jobs[maker] if maker else None)
            if track_args is not None:
                sharing[name] = job
                job = _with_shared_track(result, job, track_args, outputs, out_dir, p.hash)
        result.jobs[name] = job
        outputs[str(job_output(out_dir, job))] = name
    # A driver tracked for one job only is tracked inside it, as the command alone would.
    users: dict[str, list[str]] = {}
    for name in sharing:
        users.setdefault(result.jobs[name].deps[-1], []).append(name)
    for track, names in users.items():
        if len(names) == 1:
            del result.jobs[track]
            result.jobs[names[0]] = sharing[names[0]]
    return result


def _topological(p: _Planner, deps: dict[str, list[str]]) -> list[str]:
    order, state = [], {}

    def visit(n: str, path: tuple[str, ...]) -> None:
        if state.get(n) == 2:
            return
        if state.get(n) == 1:
            raise p.fail(n, None, "its references form a cycle: " + " -> ".join(path + (n,)))
        state[n] = 1
        for d in deps[n]:
            visit(d, path + (n,))
        state[n] = 2
        order.append(n)

    for n in deps:
        visit(n, ())
    return order


def _key(name: str, cmd: str, args: dict, c: Command, hasher: _Hasher, keys: dict[str, str]) -> str:
    inputs = {}
    for k in c.paths:
        values = args.get(k)
        for v in values if isinstance(values, list) else [values]:
            if v is None:
                continue
            inputs[v] = keys[v[1:]] if v.startswith("@") else hasher(Path(v), by_stat=k in _STAT_HASHED)
    text = json.dumps({"name": name, "command": cmd, "args": args, "inputs": inputs}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def job_output(out_dir: Path, job: Job) -> Path:
    """The final path of ``job``'s output (inside its folder, or the shared intermediate's own path)."""
    return Path(job.output) if job.shared else out_dir / job.name / job.output


def _substitute(args: dict, out_dir: Path, jobs: Mapping[str, Job]) -> dict:
    def sub(v):
        if isinstance(v, list):
            return [sub(x) for x in v]
        if isinstance(v, str) and v.startswith("@") and v[1:] in jobs:
            return str(job_output(out_dir, jobs[v[1:]]))
        return v

    return {k: sub(v) for k, v in args.items()}


def _with_shared_track(result: Plan, job: Job, track_args: dict, outputs: Mapping[str, str], out_dir: Path,
                       hasher: _Hasher) -> Job:
    """``job`` reading its driver from the shared tracking (added to the plan once)."""
    driver = track_args["input"]
    driver_job = outputs.get(driver)
    content = result.jobs[driver_job].key if driver_job else hasher(Path(driver))
    h = hashlib.sha256(json.dumps({"driver": content, "args": {k: v for k, v in track_args.items() if k != "input"}},
                                  sort_keys=True, default=str).encode()).hexdigest()[:24]
    name = f"{CACHE}/tracks/{h}"
    if name not in result.jobs:
        path = out_dir / CACHE / "tracks" / f"{h}.track"
        deps = (driver_job,) if driver_job else ()
        result.jobs[name] = Job(name, "driver tracking", "track", track_args, deps, h, str(path), shared=True)
    return Job(job.name, job.entry, job.command, {**job.args, "driver": result.jobs[name].output},
               job.deps + (name,), job.key, job.output)
