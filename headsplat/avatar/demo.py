"""The whole job on the built-in sample: an avatar of the built-in portrait, animated by a procedural performance
built from the rig's named controls (talking, smile, blinks, brows, head turns)."""

from __future__ import annotations

from pathlib import Path

from headsplat.avatar.animate import offset_motion
from headsplat.avatar.methods.fitted import fit_and_save, motion_frames
from headsplat.avatar.posed_photo import sample_portrait
from headsplat.core.rotation import axis_angle_to_matrix
from headsplat.media.sink import write_frames
from headsplat.rig.controls import controls_to_params, demo_performance
from headsplat.rig.open_rig import OpenRig
from headsplat.track.arrays import track_images


def run_demo(output_dir: Path, quiet: bool, preset: str, n_frames: int) -> dict:
    """``sample.avatar`` and ``sample.mp4`` (``n_frames`` at 25 fps) in ``output_dir``; returns their paths, the
    frame count and the avatar's ``info``."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    rig = OpenRig()
    paths = {"avatar": out / "sample.avatar", "video": out / "sample.mp4"}
    img = sample_portrait()
    tracking = track_images([img], rig, quiet)
    avatar = fit_and_save([img], [0], tracking, paths["avatar"], rig, preset, 0, quiet,
                          {"inputs": ["the built-in sample portrait (headsplat/avatar/data/astronaut.png)"]})
    perf = demo_performance(n_frames)
    exp, rot = controls_to_params(perf, rig.expression_names, n_frames)
    motion = offset_motion(avatar, exp, axis_angle_to_matrix(rot))
    write_frames(paths["video"], 25.0, motion_frames(avatar, rig, motion, "source", quiet))
    paths["frames"] = n_frames
    paths["info"] = avatar.info
    return paths
