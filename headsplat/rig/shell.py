"""The generated head shell that closes MediaPipe's face mesh into a whole head.

Rings of vertices run from the face outline to a pole at the back of the head along great circles of an
ellipsoid (the skull), bulge slightly at the ears, and stretch downwards into a neck stub. Ring 0 is the
face outline itself, so the shell is stitched to the face without seams.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ShellConfig:
    """Shape of the generated head, in metres in the canonical head space."""

    centre: tuple = (0.0, 0.02, -0.005)  # skull ellipsoid centre
    axes: tuple = (0.079, 0.12, 0.105)  # skull half-width, half-height, half-length
    pole: tuple = (0.0, 0.25, -1.0)  # direction of the ring's convergence point (back of the head)
    rings: int = 12  # rings between the face outline and the pole
    blend: float = 0.3  # fraction of the path over which the outline's radius eases into the skull's
    ear_bulge: float = 0.008  # outward push at the ears
    neck_radius: float = 0.052
    neck_centre_z: float = -0.025
    neck_bottom: float = -0.2  # lowest y of the neck stub
    neck_start: float = -0.45  # direction y below which shell points are pulled into the neck


def _slerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Great-circle interpolation between unit vectors a (..., 3) and b (3,) at fractions t (...)."""
    dot = np.clip((a * b).sum(-1), -1.0, 1.0)
    om = np.arccos(dot)[..., None]
    so = np.sin(om)
    t = t[..., None]
    lin = (1 - t) * a + t * b
    out = np.where(so > 1e-6, (np.sin((1 - t) * om) * a + np.sin(t * om) * b) / np.where(so > 1e-6, so, 1), lin)
    return out / np.linalg.norm(out, axis=-1, keepdims=True)


def build_shell(face_vertices: np.ndarray, outline: np.ndarray, cfg: ShellConfig = ShellConfig()
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Generate the shell for a neutral face.

    Args:
        face_vertices: (Vf, 3) neutral face vertices in metres.
        outline: (B,) ordered indices of the face's outer boundary loop.
        cfg: shell shape.

    Returns:
        vertices: (S, 3) new shell vertices (rings 1..R then the pole).
        triangles: (F, 3) shell triangles indexing [face vertices, shell vertices], facing outwards.
        ring_param: (S,) each shell vertex's position along its path, 0 at the outline, 1 at the pole, and
            ring_source: (S,) the outline vertex each one starts from (the pole: -1) stacked as (2, S).
    """
    c, ax = np.asarray(cfg.centre), np.asarray(cfg.axes)
    b = face_vertices[outline]  # (B, 3)
    q = (b - c) / ax
    rho0 = np.linalg.norm(q, axis=1)
    d0 = q / rho0[:, None]
    pole = np.asarray(cfg.pole, float)
    pole /= np.linalg.norm(pole)
    nb, nr = len(outline), cfg.rings
    s = np.arange(1, nr + 1) / (nr + 1)  # ring fractions, pole at 1
    dirs = _slerp(d0[None], pole, np.repeat(s[:, None], nb, 1))  # (R, B, 3)
    ease = np.clip(s / cfg.blend, 0, 1)
    ease = ease * ease * (3 - 2 * ease)
    rho = rho0[None] * (1 - ease[:, None]) + ease[:, None]
    pts = c + ax * dirs * rho[..., None]  # (R, B, 3)
    pole_pt = c + ax * pole
    allpts = np.concatenate([pts.reshape(-1, 3), pole_pt[None]], 0)
    alldirs = np.concatenate([dirs.reshape(-1, 3), pole[None]], 0)
    # Ears: a gentle bulge around the sideways directions.
    ear = np.exp(-((np.abs(alldirs[:, 0]) - 1) ** 2 + alldirs[:, 1] ** 2 + (alldirs[:, 2] + 0.1) ** 2) / 0.08)
    allpts[:, 0] += np.sign(alldirs[:, 0]) * cfg.ear_bulge * ear
    # Neck stub: directions pointing down are pulled onto a vertical cylinder and stretched to the bottom.
    w = np.clip((cfg.neck_start - alldirs[:, 1]) / (1 + cfg.neck_start), 0, 1)
    w = w * w * (3 - 2 * w)
    xz = np.stack([alldirs[:, 0], alldirs[:, 2]], 1)
    xz = xz / np.maximum(np.linalg.norm(xz, axis=1, keepdims=True), 1e-6)
    cyl_x = xz[:, 0] * cfg.neck_radius
    cyl_z = cfg.neck_centre_z + xz[:, 1] * cfg.neck_radius
    base_y = c[1] - ax[1] * np.cos(np.arcsin(min(cfg.neck_radius / ax[0], 0.99)))
    down = np.clip((-alldirs[:, 1] - (-cfg.neck_start)) / (1 + cfg.neck_start), 0, 1)
    cyl_y = base_y + (cfg.neck_bottom - base_y) * down
    allpts[:, 0] = (1 - w) * allpts[:, 0] + w * cyl_x
    allpts[:, 2] = (1 - w) * allpts[:, 2] + w * cyl_z
    allpts[:, 1] = (1 - w) * allpts[:, 1] + w * np.minimum(cyl_y, allpts[:, 1])

    vf = len(face_vertices)
    ring_idx = lambda r: outline if r == 0 else vf + (r - 1) * nb + np.arange(nb)  # noqa: E731
    tris = []
    for r in range(nr):
        a, bb = ring_idx(r), ring_idx(r + 1)
        a2, b2 = np.roll(a, -1), np.roll(bb, -1)
        tris += [np.stack([a, a2, bb], 1), np.stack([a2, b2, bb], 1)]
    last = ring_idx(nr)
    pole_i = vf + nr * nb
    tris.append(np.stack([last, np.roll(last, -1), np.full(nb, pole_i)], 1))
    tris = np.concatenate(tris, 0)
    verts = np.concatenate([face_vertices, allpts], 0)
    n = np.cross(verts[tris[:, 1]] - verts[tris[:, 0]], verts[tris[:, 2]] - verts[tris[:, 0]])
    outward = ((verts[tris].mean(1) - c) * n).sum(1)
    if (outward < 0).mean() > 0.5:
        tris = tris[:, [0, 2, 1]]
    ring_param = np.concatenate([np.repeat(s, nb), [1.0]])
    ring_source = np.concatenate([np.tile(outline, nr), [-1]])
    return allpts, tris.astype(np.int64), np.stack([ring_param, ring_source], 0)
