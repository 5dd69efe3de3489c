"""An avatar's posed Gaussians in the standard 3DGS PLY layout: one frame of a motion, or every frame into a
folder (written atomically)."""

from __future__ import annotations

from pathlib import Path

import torch
from tqdm import tqdm

from headsplat.avatar.animate import Motion
from headsplat.avatar.avatar import Avatar, pose_avatar
from headsplat.core.errors import HeadsplatError
from headsplat.core.fileio import atomic_dir
from headsplat.rig.base import HeadRig
from headsplat.splat.ply import write_ply


@torch.no_grad()
def export_frame(avatar: Avatar, rig: HeadRig, motion: Motion, t: int, path: Path) -> Path:
    """Frame ``t`` of ``motion`` as one PLY file."""
    if not 0 <= t < len(motion):
        raise HeadsplatError(f"--frame {t} is out of range: the driver has {len(motion)} frames")
    write_ply(path, pose_avatar(avatar, rig, **motion.frame(t)))
    return path


@torch.no_grad()
def export_sequence(avatar: Avatar, rig: HeadRig, motion: Motion, folder: Path, quiet: bool) -> list[Path]:
    """Every frame of ``motion`` as ``folder/00000.ply``, …; the folder appears complete or not at all."""
    written = []
    with atomic_dir(folder) as d:
        for t in tqdm(range(len(motion)), desc="exporting", unit="frame", disable=quiet, leave=False):
            write_ply(d / f"{t:05d}.ply", pose_avatar(avatar, rig, **motion.frame(t)))
            written.append(folder / f"{t:05d}.ply")
    return written
