"""FLAME as CAP4D's MMDM was trained on it (its tracker's skinning, with an added mouth), from the user's FLAME file.

The skinning differs from FLAME's own, and the conditioning maps depend on it, so it is reproduced as it is:
- each joint's rotation turns the vertices about that joint's rest position, with no kinematic chain (a child
  joint does not follow its parent), blended by the skinning weights; the head's rotation and translation are
  applied afterwards to everything;
- the neck rotation is written into the root's slot, and the pose correctives take (R − 2I), not (R − I), of the
  root, jaw and eye rotations (the tracker subtracts the identity twice);
- the last expression direction is replaced by CAP4D's blink blend shape when one is given;
- the mouth: a half UV sphere (10 latitudes × 20 longitudes, the longitudes including both 0 and 2π: 200
  vertices) scaled to a quarter of the jaw-joint-to-lip distance and placed three quarters of the way from the
  jaw joint to a lip vertex, 5 mm back; it follows the shape but not the expression (its offsets are zero).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from headsplat.core.rotation import axis_angle_to_matrix

LIP_VERTEX = 3533  # FLAME's upper-lip vertex the mouth is placed from
LIP_OFFSET = 0.005
MOUTH_STEPS = 20


def half_uv_sphere(steps: int = MOUTH_STEPS) -> tuple[torch.Tensor, torch.Tensor]:
    """(steps²/2, 3) vertices and their triangles of CAP4D's mouth: the lower half of a unit UV sphere (y and z
    flipped), latitudes −90°…0° in ``steps // 2`` rows of ``steps`` longitudes 0…360° (both ends included)."""
    lat = torch.linspace(-math.pi / 2, math.pi / 2, steps)[:steps // 2]
    lon = torch.linspace(0, 2 * math.pi, steps)
    la, lo = torch.meshgrid(lat, lon, indexing="ij")
    v = torch.stack([la.cos() * lo.cos(), -(la.cos() * lo.sin()), -la.sin()], -1).reshape(-1, 3)
    faces = []
    for i in range(steps // 2 - 1):
        for j in range(steps):
            a, b = i * steps + j, i * steps + (j + 1) % steps
            c, d = (i + 1) * steps + j, (i + 1) * steps + (j + 1) % steps
            faces.append([a, d, c])
            if i > 0:
                faces.append([a, b, d])
    return v, torch.tensor(faces, dtype=torch.int64)


class CAP4DFlame(nn.Module):
    """FLAME posed the way CAP4D's conditioning expects (see the module docstring).

    Args:
        data: the user's FLAME file (:func:`headsplat.rig.flame.loader.load_flame_file`, with the shape and
            expression counts wanted: CAP4D uses 150 and 65).
        blink: (V, 3) CAP4D's blink blend shape, replacing the last expression direction, or None.
        mouth: add the mouth's 200 vertices.
        lip_vertex: the lip vertex the mouth is placed from.
    """

    def __init__(self, data, blink: np.ndarray | None = None, mouth: bool = True, lip_vertex: int = LIP_VERTEX):
        super().__init__()
        nv = data.v_template.shape[0]
        expr = torch.from_numpy(np.ascontiguousarray(data.exprdirs)).float().clone()
        if blink is not None:
            expr[:, :, -1] = torch.as_tensor(blink, dtype=torch.float32)
        self.register_buffer("template", torch.from_numpy(data.v_template).float())
        self.register_buffer("shapedirs", torch.from_numpy(np.ascontiguousarray(data.shapedirs)).float())
        self.register_buffer("exprdirs", expr)
        # (36, V·3) pose basis -> (4 joints, 3, 3, V, 3)
        self.register_buffer("posedirs", torch.from_numpy(data.posedirs).float().reshape(4, 3, 3, nv, 3))
        self.register_buffer("J_regressor", torch.from_numpy(data.J_regressor).float())
        self.register_buffer("weights", torch.from_numpy(data.weights).float())
        self.register_buffer("flame_faces", torch.from_numpy(data.faces))
        self.mouth, self.lip_vertex = mouth, lip_vertex
        sphere, sphere_faces = half_uv_sphere()
        self.register_buffer("sphere", sphere)
        self.register_buffer("sphere_faces", sphere_faces)

    @property
    def faces(self) -> torch.Tensor:
        """(F, 3) FLAME's triangles, then the mouth's."""
        if not self.mouth:
            return self.flame_faces
        return torch.cat([self.flame_faces, self.sphere_faces + self.template.shape[0]])

    def mouth_vertices(self, neutral: torch.Tensor) -> torch.Tensor:
        """(200, 3) the mouth of a neutral (shape-only) head (V, 3)."""
        jaw = self.J_regressor[2] @ neutral
        offset = neutral[self.lip_vertex] - jaw
        distance = offset.norm()
        z = offset / distance
        x = torch.linalg.cross(torch.tensor([0.0, 1.0, 0.0], dtype=z.dtype, device=z.device), z)
        x = x / x.norm()
        y = torch.linalg.cross(z, x)
        y = y / y.norm()
        rot = torch.stack([x, y, z], -1)
        return (self.sphere * distance * 0.25) @ rot.T + (jaw + offset * 0.75 - LIP_OFFSET * z)

    def forward(self, shape: torch.Tensor, expression: torch.Tensor, rotation: torch.Tensor,
                translation: torch.Tensor, eye_rotation: torch.Tensor, jaw_rotation: torch.Tensor | None = None,
                neck_rotation: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Posed vertices (T, V [+ 200], 3) and their offsets from the shape-only head (the expression and joint
        motion, before the head's rotation and translation; zero on the mouth).

        Args:
            shape: (S,). expression: (T, E). rotation, translation: (T, 3) the head (axis-angle, metres).
            eye_rotation: (T, 3) both eyes. jaw_rotation, neck_rotation: (T, 3) or None.
        """
        t = expression.shape[0]
        neutral = self.template + torch.einsum("s,vcs->vc", shape, self.shapedirs)
        verts = neutral + torch.einsum("te,vce->tvc", expression, self.exprdirs)
        eye = torch.eye(3, dtype=verts.dtype, device=verts.device)
        rots = eye.expand(t, 5, 3, 3).clone()
        if neck_rotation is not None:
            rots[:, 0] = axis_angle_to_matrix(neck_rotation)  # the tracker's convention: into the root's slot
        if jaw_rotation is not None:
            rots[:, 2] = axis_angle_to_matrix(jaw_rotation)
        rots[:, 3] = rots[:, 4] = axis_angle_to_matrix(eye_rotation)
        pose_params = rots[:, [0, 2, 3, 4]] - 2 * eye  # the tracker subtracts the identity twice
        posed = verts + torch.einsum("tjab,jabvc->tvc", pose_params, self.posedirs)
        joints = torch.einsum("tvc,jv->tjc", verts, self.J_regressor)
        tf = torch.zeros(t, 5, 4, 4, dtype=verts.dtype, device=verts.device)
        tf[..., :3, :3] = rots
        tf[..., :3, 3] = joints - (rots @ joints[..., None])[..., 0]
        tf[..., 3, 3] = 1.0
        blended = torch.einsum("vj,tjab->tvab", self.weights, tf)
        out = (blended[..., :3, :3] @ posed[..., None])[..., 0] + blended[..., :3, 3]
        offsets = out - neutral
        if self.mouth:
            m = self.mouth_vertices(neutral).expand(t, -1, -1)
            out = torch.cat([out, m], 1)
            offsets = torch.cat([offsets, torch.zeros_like(m)], 1)
        R = axis_angle_to_matrix(rotation)
        out = out @ R.transpose(-1, -2) + translation[:, None]
        return out, offsets
