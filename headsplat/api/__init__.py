"""The public functions behind every CLI command (same arguments); the CLI only parses and prints.

One module per command group: :mod:`face_tracking` (track), :mod:`avatars` (create, demo), :mod:`playback`
(animate, render, export), :mod:`viewing` (view), :mod:`evaluation` (eval), :mod:`generation` (generate),
:mod:`diagnostics` (doctor).
"""

from headsplat.api.avatars import create, demo
from headsplat.api.common import sample_portrait
from headsplat.api.diagnostics import doctor
from headsplat.api.evaluation import eval_cross, eval_reenact
from headsplat.api.generation import generate
from headsplat.api.face_tracking import (
           PosedPhotoVideo,
           render_posed_photo,
           track,
           write_overlay,
)
from headsplat.api.playback import BACKGROUNDS, animate, export, render
from headsplat.api.viewing import view

__all__ = ["BACKGROUNDS", "PosedPhotoVideo", "animate", "create", "demo", "doctor", "eval_cross", "eval_reenact",
           "export", "generate", "render", "render_posed_photo", "sample_portrait", "track", "view", "write_overlay"]
