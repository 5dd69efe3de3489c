"""A small procedural expression basis on MediaPipe's face mesh, with named controls.

Each basis shape is a displacement field of the 478 face vertices in metres (at coefficient 1), made by
harmonic interpolation on the mesh from a few driven landmarks (lips, lids, brows) with the face outline,
nose and eyes held still; the jaw is a rotation about the jaw joint weighted by a harmonic field.
"""

from __future__ import annotations

import numpy as np

from headsplat.face import indices as ix
from headsplat.rig.mesh_ops import graph_laplacian, harmonic

EXPRESSION_NAMES = (
    "jaw_open", "mouth_wide", "pucker", "smile_left", "smile_right", "frown_left", "frown_right",
    "upper_lip_up", "lower_lip_down", "blink_left", "blink_right", "brow_up_left", "brow_up_right", "brow_down",
)

JAW_PIVOT = np.array([0.0, -0.01, 0.01])  # near the jaw joints, in front of the ears
JAW_ANGLE = 0.30  # radians of jaw rotation at jaw_open = 1

_UPPER_LIP_OUTER = np.array([185, 40, 39, 37, 0, 267, 269, 270, 409])
_LOWER_LIP_OUTER = np.array([146, 91, 181, 84, 17, 314, 405, 321, 375])
_NOSE = np.array([1, 2, 4, 5, 6, 168, 195, 197, 98, 327])


def _rot_x(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


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
    rotated = (v - JAW_PIVOT) @ _rot_x(JAW_ANGLE).T + JAW_PIVOT
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
    for name, upper, lower, corners_ in (("blink_left", ix.LEFT_EYE_UPPER, ix.LEFT_EYE_LOWER, ix.LEFT_EYE_CORNERS),
                                         ("blink_right", ix.RIGHT_EYE_UPPER, ix.RIGHT_EYE_LOWER, ix.RIGHT_EYE_CORNERS)):
        gap = v[lower] - v[upper]
        d = {int(u): 0.8 * g for u, g in zip(upper, gap)}
        d.update({int(lo): -0.2 * g for lo, g in zip(lower, gap)})
        shapes[name] = field(d, np.concatenate([still_face, brows, corners_]))

    for name, brow, other in (("brow_up_left", ix.LEFT_BROW, ix.RIGHT_BROW),
                              ("brow_up_right", ix.RIGHT_BROW, ix.LEFT_BROW)):
        d = {int(i): [0, 0.008, 0.001] for i in brow}
        d.update({int(i): [0, 0, 0] for i in other})
        shapes[name] = field(d, np.concatenate([np.setdiff1d(outline, [10, 338, 109, 297, 67]), eyes, _NOSE]))
    inner_r, inner_l = np.array([107, 66, 55, 65]), np.array([336, 296, 285, 295])
    d = {int(i): [0.003, -0.005, 0] for i in inner_r}
    d.update({int(i): [-0.003, -0.005, 0] for i in inner_l})
    shapes["brow_down"] = field(d, np.concatenate([outline, eyes, _NOSE]))

    return np.stack([shapes[k] for k in EXPRESSION_NAMES]).astype(np.float32)
