"""The public functions behind every CLI command (same arguments); the CLI only parses and prints.

One module per command group: :mod:`face_tracking` (track), :mod:`avatars` (create, demo), :mod:`playback`
(animate, render, export), :mod:`viewing` (view), :mod:`evaluation` (eval), :mod:`generation` (generate),
:mod:`diagnostics` (doctor), :mod:`batches` (batch: many of these as Ray tasks). Each validates its arguments,
picks the avatar method or generator from its registry (:mod:`headsplat.avatar.methods`,
:mod:`headsplat.avatar.generators`) and calls it.
"""

from headsplat.api.avatars import create, demo
from headsplat.api.batches import batch
from headsplat.api.diagnostics import doctor
from headsplat.api.evaluation import eval_cross, eval_reenact
from headsplat.api.face_tracking import track
from headsplat.api.generation import generate
from headsplat.api.playback import BACKGROUNDS, animate, export, render
from headsplat.api.viewing import view
from headsplat.avatar.posed_photo import PosedPhotoVideo, render_posed_photo, sample_portrait
from headsplat.track.overlay import write_overlay

__all__ = ["BACKGROUNDS", "PosedPhotoVideo", "animate", "batch", "create", "demo", "doctor", "eval_cross",
           "eval_reenact", "export", "generate", "render", "render_posed_photo", "sample_portrait", "track", "view",
           "write_overlay"]
