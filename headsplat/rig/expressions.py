"""A procedural expression basis on MediaPipe's face mesh: 27 named, local shapes.

Each basis shape is a displacement field of the 478 face vertices in metres (at coefficient 1), made by
harmonic interpolation on the mesh from a few driven landmarks (lips, lids, brows) with the face outline,
nose and eyes held still; the jaw is a rotation about the jaw joint weighted by a harmonic field. Most shapes
come in left/right pairs, so asymmetric expressions (a lopsided smile, one raised brow, a wink) are
represented; lids have closing (blink), opening (wide) and lower-lid (squint) shapes, brows whole, inner and
knitted, lips pucker, funnel, press, stretch and sideways, the jaw opens and shifts sideways (the sideways
shapes are signed, + towards the person's left); the gaze moves both irises sideways and up or down.
"""

from __future__ import annotations

import numpy as np
import torch

from headsplat.face import indices as ix
from headsplat.rig.mesh_ops import graph_laplacian, harmonic

EXPRESSION_NAMES = (
    "jaw_open", "mouth_wide", "pucker", "smile_left", "smile_right", "frown_left", "frown_right",
    "upper_lip_up", "lower_lip_down", "blink_left", "blink_right", "brow_up_left", "brow_up_right",
    "brow_down_left", "brow_down_right", "brow_inner_up_left", "brow_inner_up_right", "wide_left", "wide_right",
    "squint_left", "squint_right", "lips_press", "lips_funnel", "mouth_sideways", "jaw_sideways",
    "gaze_yaw", "gaze_pitch",
)

# Gaze: both irises (and the eyeballs behind the lids) slide across the eye at these metres per unit:
# + towards the person's left (+x) and up (+y); about 20 degrees of eye rotation at 1.
GAZE_SHIFT = (0.004, 0.003)

JAW_PIVOT = np.array([0.0, -0.01, 0.01])  # near the jaw joints, in front of the ears
JAW_ANGLE = 0.30  # radians of jaw rotation at jaw_open = 1

_UPPER_LIP_OUTER = np.array([185, 40, 39, 37, 0, 267, 269, 270, 409])
_LOWER_LIP_OUTER = np.array([146, 91, 181, 84, 17, 314, 405, 321, 375])
_NOSE = np.array([1, 2, 4, 5, 6, 168, 195, 197, 98, 327])


def rot_x(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def blink_targets(upper, lower):
    """(..., 2L, 3) lid displacements that close an eye: the upper lid goes 80 % and the lower lid 20 % of the
    way to the other (upper (..., L, 3), lower (..., L, 3) lid-margin positions)."""
    gap = lower - upper
    if torch.is_tensor(gap):
        return torch.cat([0.8 * gap, -0.2 * gap], -2)
    return np.concatenate([0.8 * gap, -0.2 * gap], -2)


def lid_operators(vertices: np.ndarray, triangles: np.ndarray, outline: np.ndarray) -> dict:
    """Per eye, the linear map from the displacements of its lid margins to a smooth displacement of the whole
    face (harmonic, with the face outline, nose, brows, eye corners and the other eye held still).

    Returns:
        side -> (operator (478, 2L): upper-lid then lower-lid vertices' displacement -> every vertex's,
        upper (L,), lower (L,) lid vertex indices).
    """
    lap = graph_laplacian(triangles, len(vertices))
    brows = np.concatenate([ix.RIGHT_BROW, ix.LEFT_BROW])
    out = {}
    for side, (upper, lower, corners) in ix.EYE_LIDS.items():
        other = np.concatenate([a for k, group in ix.EYE_LIDS.items() if k != side for a in group])
        driven = np.concatenate([upper, lower])
        still = np.setdiff1d(np.concatenate([outline, _NOSE, brows, corners, other]), driven)
        fixed = np.concatenate([driven, still])
        values = np.concatenate([np.eye(len(driven)), np.zeros((len(still), len(driven)))])
        out[side] = (harmonic(lap, fixed, values), upper, lower)
    return out


def build_expression_basis(vertices: np.ndarray, triangles: np.ndarray, outline: np.ndarray) -> np.ndarray:
    """The (E, 478, 3) basis for a neutral face (the template), in the order of :data:`EXPRESSION_NAMES`.

    Args:
        vertices: (478, 3) neutral face in metres, canonical head space.
        triangles: (F, 3) face-mesh triangles.
        outline: (B,) the face's outer boundary loop.
    """
    n = len(vertices)
    lap = graph_laplacian(triangles, n)
    v = vertices
    eyes = np.concatenate([ix.RIGHT_EYE_UPPER, ix.RIGHT_EYE_LOWER, ix.RIGHT_EYE_CORNERS,
                           ix.LEFT_EYE_UPPER, ix.LEFT_EYE_LOWER, ix.LEFT_EYE_CORNERS])
    inner_up = np.setdiff1d(ix.LIPS_INNER_UPPER, [78, 308])
    inner_lo = np.setdiff1d(ix.LIPS_INNER_LOWER, [78, 308])

    def field(driven: dict, still: np.ndarray) -> np.ndarray:
        idx = np.array(list(driven.keys()), dtype=np.int64)
        still = np.setdiff1d(np.unique(still), idx)
        fixed = np.concatenate([idx, still])
        vals = np.concatenate([np.array([driven[i] for i in idx], float).reshape(len(idx), -1),
                               np.zeros((len(still), 3))])
        return harmonic(lap, fixed, vals)

    still_face = np.concatenate([outline, _NOSE])
    shapes = {}

    # jaw_open: a rotation about the jaw joint, weighted 1 on the lower lip and chin, 0 above the mouth.
    corner_y = v[ix.MOUTH_CORNERS, 1].mean()
    chin_y = v[ix.CHIN, 1]
    out_w = np.clip((corner_y - v[outline, 1]) / (corner_y - chin_y), 0, 1) ** 1.5
    fixed = np.concatenate([inner_lo, _LOWER_LIP_OUTER, [ix.CHIN], inner_up, _UPPER_LIP_OUTER, _NOSE, eyes,
                            outline, ix.MOUTH_CORNERS, [78, 308]])
    vals = np.concatenate([np.ones(len(inner_lo) + len(_LOWER_LIP_OUTER) + 1),
                           np.zeros(len(inner_up) + len(_UPPER_LIP_OUTER) + len(_NOSE) + len(eyes)),
                           out_w, np.full(4, 0.4)])
    fixed, first = np.unique(fixed, return_index=True)
    w = harmonic(lap, fixed, vals[first][:, None])[:, 0]
    rotated = (v - JAW_PIVOT) @ rot_x(JAW_ANGLE).T + JAW_PIVOT
    shapes["jaw_open"] = w[:, None] * (rotated - v)

    lips_centre = np.array([0, 17, 13, 14])
    r, l = ix.MOUTH_CORNERS  # 61 is the person's right corner (-x), 291 the left (+x)

    def corners(dl, dr, extra=None, still=None):
        d = {l: dl, r: dr}
        d.update(extra or {})
        return field(d, np.concatenate([still_face, eyes] + ([still] if still is not None else [])))

    shapes["mouth_wide"] = corners([0.007, 0, -0.003], [-0.007, 0, -0.003], still=lips_centre)
    pucker_lips = {i: [0, 0, 0.006] for i in np.concatenate([_UPPER_LIP_OUTER, _LOWER_LIP_OUTER])}
    shapes["pucker"] = corners([-0.008, 0, 0.002], [0.008, 0, 0.002], extra=pucker_lips)
    shapes["smile_left"] = field({l: [0.005, 0.007, -0.004], r: [0, 0, 0]},
                                 np.concatenate([still_face, eyes, lips_centre]))
    shapes["smile_right"] = field({r: [-0.005, 0.007, -0.004], l: [0, 0, 0]},
                                  np.concatenate([still_face, eyes, lips_centre]))
    shapes["frown_left"] = field({l: [0.0, -0.006, 0], r: [0, 0, 0]}, np.concatenate([still_face, eyes, lips_centre]))
    shapes["frown_right"] = field({r: [0.0, -0.006, 0], l: [0, 0, 0]}, np.concatenate([still_face, eyes, lips_centre]))
    up = {i: [0, 0.004, 0.001] for i in np.concatenate([_UPPER_LIP_OUTER, inner_up])}
    shapes["upper_lip_up"] = field(up, np.concatenate([still_face, eyes, inner_lo, _LOWER_LIP_OUTER, ix.MOUTH_CORNERS]))
    down = {i: [0, -0.005, 0.001] for i in np.concatenate([_LOWER_LIP_OUTER, inner_lo])}
    shapes["lower_lip_down"] = field(down, np.concatenate([still_face, eyes, inner_up, _UPPER_LIP_OUTER,
                                                           ix.MOUTH_CORNERS, [ix.CHIN]]))

    brows = np.concatenate([ix.RIGHT_BROW, ix.LEFT_BROW])
    for side, (op, upper, lower) in lid_operators(vertices, triangles, outline).items():
        shapes[f"blink_{side}"] = op @ blink_targets(v[upper], v[lower])
    for side, (upper, lower, corners_) in ix.EYE_LIDS.items():
        gap = v[lower] - v[upper]  # upper lid -> lower lid, per lid vertex pair
        other = np.concatenate([a for k, group in ix.EYE_LIDS.items() if k != side for a in group])
        keep = np.concatenate([still_face, brows, corners_, other])
        d = {int(u): -0.45 * g + np.array([0, 0, 0.0005]) for u, g in zip(upper, gap)}
        d.update({int(lo): 0 * g for lo, g in zip(lower, gap)})
        shapes[f"wide_{side}"] = field(d, keep)
        d = {int(lo): -0.4 * g for lo, g in zip(lower, gap)}
        d.update({int(u): 0.1 * g for u, g in zip(upper, gap)})
        shapes[f"squint_{side}"] = field(d, keep)

    inner = {"right": np.array([107, 66, 55, 65]), "left": np.array([336, 296, 285, 295])}
    toward_nose = {"right": 1.0, "left": -1.0}  # +x is the person's left
    for side, brow, other in (("left", ix.LEFT_BROW, ix.RIGHT_BROW), ("right", ix.RIGHT_BROW, ix.LEFT_BROW)):
        still_brow = np.concatenate([np.setdiff1d(outline, [10, 338, 109, 297, 67]), eyes, _NOSE])
        d = {int(i): [0, 0.008, 0.001] for i in brow}
        d.update({int(i): [0, 0, 0] for i in other})
        shapes[f"brow_up_{side}"] = field(d, still_brow)
        d = {int(i): [0, 0.007, 0.001] for i in inner[side]}
        d.update({int(i): [0, 0, 0] for i in np.setdiff1d(brow, inner[side])})
        d.update({int(i): [0, 0, 0] for i in other})
        shapes[f"brow_inner_up_{side}"] = field(d, still_brow)
        d = {int(i): [0.003 * toward_nose[side], -0.005, 0] for i in inner[side]}
        d.update({int(i): [0, 0, 0] for i in other})
        shapes[f"brow_down_{side}"] = field(d, np.concatenate([outline, eyes, _NOSE]))

    # Lips: press (the red of the lips thins: outer lines move towards the inner ones), funnel (lips forward
    # and flared, corners in), the whole mouth sideways; the jaw sideways.
    lips_outer = np.concatenate([_UPPER_LIP_OUTER, _LOWER_LIP_OUTER])
    lips_all = np.unique(np.concatenate([lips_outer, inner_up, inner_lo, ix.MOUTH_CORNERS, [78, 308]]))
    d = {int(i): [0, -0.0025, 0.0005] for i in _UPPER_LIP_OUTER}
    d.update({int(i): [0, 0.0025, 0.0005] for i in _LOWER_LIP_OUTER})
    d.update({int(i): [0, 0, 0] for i in np.concatenate([inner_up, inner_lo, ix.MOUTH_CORNERS])})
    shapes["lips_press"] = field(d, np.concatenate([still_face, eyes]))
    mouth_c = v[lips_outer].mean(0)
    d = {int(i): 0.25 * (v[i] - mouth_c) * np.array([0, 1, 0]) + np.array([0, 0, 0.006]) for i in lips_outer}
    d.update({int(i): 0.5 * (v[i] - mouth_c) * np.array([0, 1, 0]) + np.array([0, 0, 0.004])
              for i in np.concatenate([inner_up, inner_lo])})
    d.update({int(r): [0.005, 0, 0.002], int(l): [-0.005, 0, 0.002]})
    shapes["lips_funnel"] = field(d, np.concatenate([still_face, eyes]))
    # sideways shapes are signed: + towards the person's left (+x)
    shapes["mouth_sideways"] = field({int(i): [0.006, 0, 0] for i in lips_all}, np.concatenate([still_face, eyes]))
    shapes["jaw_sideways"] = w[:, None] * np.array([0.005, 0.0, 0.0])
    # Gaze moves the iris points only (the mesh's lids stay); the open rig moves its eyeballs with them.
    iris = np.concatenate([ix.RIGHT_IRIS, ix.LEFT_IRIS])
    for name, axis in (("gaze_yaw", 0), ("gaze_pitch", 1)):
        shapes[name] = np.zeros_like(v)
        shapes[name][iris, axis] = GAZE_SHIFT[axis]

    return np.stack([shapes[k] for k in EXPRESSION_NAMES]).astype(np.float32)
