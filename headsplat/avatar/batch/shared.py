"""Work a batch does once for many jobs: a driver that several avatars are animated with is tracked by one job
(its ``.track`` kept in the batch's ``_cache/tracks/``, named by the driver's content) that they all read."""

from __future__ import annotations

import json
from pathlib import Path

from headsplat.avatar.batch.spec import Job
from headsplat.avatar.driving import is_track_file
from headsplat.avatar.methods import DEFAULT_METHOD, get_method


def driver_track_args(job: Job, avatar_job: Job | None) -> dict | None:
    """The ``track`` arguments of an ``animate`` job's driver when tracking it once for every avatar gives what
    the job would do itself: the avatar's method tracks drivers as ``headsplat track`` does
    (``shares_driver_tracks``), on the open rig, and no paste-back (which needs the driver's frames); else None.

    ``avatar_job``: the batch's ``create`` job that makes the avatar (None: the avatar exists already)."""
    a = job.args
    driver = a["driver"]
    if is_track_file(driver) or a.get("paste_back"):
        return None
    if avatar_job is not None:
        method, rig = avatar_job.args.get("method", DEFAULT_METHOD), avatar_job.args.get("rig", "open")
    else:
        try:
            meta = json.loads((Path(a["avatar"]) / "avatar.json").read_text())
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            return None
        if not isinstance(meta, dict):
            return None
        method, rig = meta.get("method", DEFAULT_METHOD), meta.get("rig")
    if rig != "open" or not get_method(method).shares_driver_tracks:
        return None
    return {"input": driver, "rig": "open", "face": a.get("face", 0)}
