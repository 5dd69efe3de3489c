"""What a new user's ``pip install headsplat`` does, checked (``make install-check``, part of ``make test``).

    python tools/check_install.py resolve [--pythons 3.10 3.11 3.12 3.13 3.14]
    python tools/check_install.py fresh [--venv DIR] [--torch torch==2.13.0]

``resolve``: for each Python version, ``pip install --dry-run --only-binary=:all:`` of the checkout's runtime
dependencies (read from pyproject.toml) for a manylinux_2_28 x86_64 machine: every dependency must have a wheel
for that version. ``fresh``: a new virtual environment, torch (pinned: unpinned it pulls CUDA wheels), then
``pip install <checkout>`` as the one command, then ``headsplat doctor`` and ``headsplat track`` on the built-in
portrait; mediapipe and protobuf must not be installed by it. One JSON line per check; exit 1 when one fails.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
PYTHONS = ("3.10", "3.11", "3.12", "3.13", "3.14")
# pip does not widen an explicit --platform to older manylinux tags: a manylinux_2_28 machine takes all of these.
PLATFORMS = [f"manylinux_2_{k}_x86_64" for k in range(28, 16, -1)] + ["manylinux2014_x86_64"]
FORBIDDEN = ("mediapipe", "protobuf")


def dependencies() -> list[str]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]


def resolve(python: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        cmd = [sys.executable, "-m", "pip", "install", "-q", "--dry-run", "--ignore-installed", "--only-binary=:all:",
               "--python-version", python, "--target", str(Path(tmp) / "t"), "--report", str(report)]
        for p in PLATFORMS:
            cmd += ["--platform", p]
        t0 = time.perf_counter()
        r = subprocess.run(cmd + dependencies(), capture_output=True, text=True)
        out = {"check": "resolve", "python": python, "ok": r.returncode == 0,
               "seconds": round(time.perf_counter() - t0, 1)}
        if r.returncode == 0:
            installs = json.loads(report.read_text())["install"]
            names = {i["metadata"]["name"].lower(): i["metadata"]["version"] for i in installs}
            out["packages"] = len(names)
            out["torch"], out["numpy"] = names.get("torch"), names.get("numpy")
            out["forbidden"] = sorted(n for n in names if n in FORBIDDEN)
            out["ok"] = not out["forbidden"]
        else:
            out["error"] = [line for line in r.stderr.splitlines() if line.startswith("ERROR")][:2]
        return out


def fresh(venv: Path, torch: str) -> dict:
    out = {"check": "fresh", "venv": str(venv), "ok": False}
    py = venv / "bin" / "python"
    steps = [("venv", [sys.executable, "-m", "venv", "--clear", str(venv)]),
             ("torch", [str(py), "-m", "pip", "install", "-q", torch]),
             ("install", [str(py), "-m", "pip", "install", "-q", str(ROOT)])]
    for name, cmd in steps:
        t0 = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True)
        out[f"{name}_s"] = round(time.perf_counter() - t0, 1)
        if r.returncode:
            out["error"] = f"{name}: " + (r.stderr.strip().splitlines() or ["failed"])[-1]
            return out
    listed = subprocess.run([str(py), "-m", "pip", "list", "--format", "json"], capture_output=True, text=True)
    installed = {p["name"].lower() for p in json.loads(listed.stdout)}
    out["forbidden"] = sorted(n for n in installed if n in FORBIDDEN)
    exe = venv / "bin" / "headsplat"
    doctor = subprocess.run([str(exe), "doctor"], capture_output=True, text=True)
    sample = subprocess.run([str(py), "-c", "import headsplat.avatar, pathlib; "
                             "print(pathlib.Path(headsplat.avatar.__file__).parent / 'data' / 'astronaut.png')"],
                            capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        track = subprocess.run([str(exe), "-q", "track", sample, "-o", str(Path(tmp) / "sample.track")],
                               capture_output=True, text=True)
        out["track_s"] = round(time.perf_counter() - t0, 1)
    out["doctor"] = doctor.returncode == 0
    out["track"] = track.returncode == 0
    out["stderr"] = (doctor.stderr + track.stderr).strip()[-300:]  # log spam shows here
    if track.returncode:
        out["error"] = (track.stderr.strip().splitlines() or ["track failed"])[-1]
    out["ok"] = out["doctor"] and out["track"] and not out["forbidden"] and not out["stderr"]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="check", required=True)
    r = sub.add_parser("resolve")
    r.add_argument("--pythons", nargs="+", default=list(PYTHONS))
    f = sub.add_parser("fresh")
    f.add_argument("--venv", type=Path, default=Path(tempfile.gettempdir()) / "headsplat-fresh-venv")
    f.add_argument("--torch", default="torch==2.13.0")
    args = ap.parse_args(argv)
    results = [resolve(p) for p in args.pythons] if args.check == "resolve" else [fresh(args.venv, args.torch)]
    for res in results:
        print(json.dumps(res), flush=True)
    return 0 if all(res["ok"] for res in results) else 1


if __name__ == "__main__":
    sys.exit(main())
