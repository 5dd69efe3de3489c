"""Named controls for demos and viewers (jaw open, smile, blinks, brows, head yaw/pitch/roll) and a
procedural performance built from them."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch

from headsplat.core.rotation import euler_yxz_to_matrix, matrix_to_axis_angle
from headsplat.rig.open_rig import explained_modes

if TYPE_CHECKING:
    from headsplat.rig.open_rig import OpenRig

# control -> {expression coefficient: weight}; head_* controls are rotations in degrees.
CONTROLS = {
    "jaw_open": {"jaw_open": 1.0},
    "smile": {"smile_left": 1.0, "smile_right": 1.0},
    "blink_left": {"blink_left": 1.0},
    "blink_right": {"blink_right": 1.0},
    "brows_up": {"brow_up_left": 1.0, "brow_up_right": 1.0},
}
# FLAME heads: the jaw opens by rotation (radians at full opening); other FLAME coefficients are controls by name.
FLAME_CONTROLS = {"jaw_open": {"jaw_rx": 0.35}}
HEAD_CONTROLS = ("head_yaw", "head_pitch", "head_roll")
CONTROL_NAMES = tuple(CONTROLS) + HEAD_CONTROLS


def _mapping(name: str, names: list) -> dict | None:
    for table in (CONTROLS, FLAME_CONTROLS):
        m = table.get(name)
        if m is not None and all(c in names for c in m):
            return m
    return {name: 1.0} if name in names else None


def rig_controls(expression_names, n_coefficients: int = 10) -> dict[str, tuple[float, float]]:
    """The controls a rig offers, name -> (min, max): the named ones its coefficients support, then (for a
    rig with unnamed coefficients, FLAME) its first ``n_coefficients`` expression coefficients, then head
    yaw/pitch/roll in degrees."""
    names = list(expression_names)
    out = {k: (0.0, 1.0) for k in list(CONTROLS) + list(FLAME_CONTROLS) if _mapping(k, names)}
    coefficients = [k for k in names if k.startswith("expr_")][:n_coefficients]
    out.update({k: (-3.0, 3.0) for k in coefficients})
    out.update({"head_yaw": (-60.0, 60.0), "head_pitch": (-30.0, 30.0), "head_roll": (-30.0, 30.0)})
    return out


def controls_to_params(controls: dict, expression_names, n_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Turn named controls into rig parameters.
    Args:
        controls: name -> scalar or (T,) array; expression controls in [0, 1], head_* in degrees.
        expression_names: the rig's expression coefficient names.
        n_frames: T.

    Returns:
        expression (T, E) and rotation (T, 3) axis-angle, float32.

    Raises:
        KeyError: an unknown control name, listing the known ones.
    """
    names = list(expression_names)
    exp = torch.zeros(n_frames, len(names))
    for k, v in controls.items():
        if k in HEAD_CONTROLS:
            continue
        mapping = _mapping(k, names)
        if mapping is None:
            raise KeyError(f"unknown control {k!r}; known: {', '.join(CONTROL_NAMES)} and the rig's coefficients")
        for coef, w in mapping.items():
            values = torch.as_tensor(np.broadcast_to(v, (n_frames,)).copy(), dtype=torch.float32)
            exp[:, names.index(coef)] += w * values
    ang = [torch.as_tensor(np.broadcast_to(controls.get(k, 0.0), (n_frames,)).copy(), dtype=torch.float32)
           for k in HEAD_CONTROLS]
    rot = matrix_to_axis_angle(euler_yxz_to_matrix(*[torch.deg2rad(a) for a in ang]))
    return exp, rot


def demo_performance(n_frames: int = 120, fps: float = 25.0) -> dict:
    """A short procedural performance: talking (jaw), a smile, blinks, brows and head turns.
    Returns:
        control name -> (T,) float32 array.
    """
    t = np.arange(n_frames) / fps
    dur = n_frames / fps
    u = t / dur
    env = lambda a, b: np.clip(np.minimum((u - a) / 0.08, (b - u) / 0.08), 0, 1)  # noqa: E731
    talk = (0.5 + 0.5 * np.sin(2 * math.pi * 3.2 * t)) * (0.3 + 0.4 * np.abs(np.sin(2 * math.pi * 0.7 * t)))
    perf = {
        "jaw_open": (talk * (env(0.0, 0.45) + env(0.75, 1.0))).astype(np.float32),
        "smile": (0.9 * env(0.45, 0.75)).astype(np.float32),
        "blink_left": np.zeros(n_frames, np.float32),
        "blink_right": np.zeros(n_frames, np.float32),
        "brows_up": (0.8 * env(0.55, 0.7)).astype(np.float32),
        "head_yaw": (22 * np.sin(2 * math.pi * u)).astype(np.float32),
        "head_pitch": (8 * np.sin(2 * math.pi * 2 * u + 0.5)).astype(np.float32),
        "head_roll": (5 * np.sin(2 * math.pi * u + 1.0)).astype(np.float32),
    }
    for centre in (0.2, 0.52, 0.85):  # blinks of about 0.2 s
        b = np.clip(1 - np.abs(t - centre * dur) / 0.1, 0, 1).astype(np.float32)
        perf["blink_left"] += b
        perf["blink_right"] += b
    return perf


def talking_performance(n_frames: int, fps: float = 25.0, yaw: float = 20.0, phase: float = 0.0) -> dict:
    """A head that talks and turns: the jaw opening and closing every 0.6 s, yaw of ``yaw`` degrees every
    1.6 s and a little pitch, starting ``phase`` seconds in (for composed test drivers).

    Returns:
        control name -> (T,) float32 array.
    """
    t = np.arange(n_frames) / fps + phase
    return {"head_yaw": (yaw * np.sin(2 * math.pi * t / 1.6)).astype(np.float32),
            "head_pitch": (5 * np.sin(2 * math.pi * t / 0.9)).astype(np.float32),
            "jaw_open": (0.7 * np.clip(np.sin(2 * math.pi * t / 0.6), 0, None)).astype(np.float32)}


def beyond_shapes_deformation(rig: OpenRig, strength: float = 1.0) -> np.ndarray:
    """(478, 3) a face deformation of the open rig that no named shape, head pose or scale makes: the left
    upper lip and nostril raised (a one-sided sneer) and the right inner brow pulled in and down (an uneven knit),
    ~1 cm at the peak for ``strength`` 1, with every component along the shapes, the rigid motions and the scale
    removed. Template units, for :meth:`OpenRig.forward`'s ``offsets`` (round trips of the free face offsets).
    """
    v = rig.template[:478].double().numpy()

    def bump(centre: int, direction) -> np.ndarray:
        w = np.exp(-((v - v[centre]) ** 2).sum(-1) / (2 * 0.012 ** 2))
        w[468:] = 0  # the irises follow the gaze
        return w[:, None] * np.asarray(direction, np.float64)[None]
    field = strength * (bump(391, (0.0, 0.01, 0.0)) + bump(285, (-0.0075, -0.005, 0.0)))
    q = explained_modes(rig)
    f = field[:468].reshape(-1)
    field[:468] = (f - q @ (q.T @ f)).reshape(468, 3)
    return field
