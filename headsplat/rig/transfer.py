"""Carry the open rig's free face offsets from one face to another (deformation transfer, per vertex).

A driver's offsets are displacements measured on the driver's neutral face. On another face, each vertex's
displacement is turned by the rotation that takes the driver's surface normal there onto the target's, and
scaled by the ratio of the two faces' local sizes (the mean length of the vertex's edges): a brow that rises
along a sloping forehead rises along the target's forehead, by as much relative to its features. Both faces
share the topology, so no correspondence is needed; the global head size is applied by the rig's scale.
"""

from __future__ import annotations

import torch

from headsplat.rig.open_rig import load_face_template

N_MESH = 468


def vertex_frames(vertices: torch.Tensor, triangles: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit area-weighted normals (..., V, 3) and mean incident edge lengths (..., V) of a mesh's vertices.

    Args:
        vertices: (..., V, 3). triangles: (F, 3) int64.
    """
    a, b, c = (vertices[..., triangles[:, i], :] for i in range(3))
    face_n = torch.linalg.cross(b - a, c - a)
    n = torch.zeros_like(vertices)
    for i in range(3):
        n = n.index_add(-2, triangles[:, i], face_n)
    n = n / n.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    # Each triangle's edges, counted at both their ends (interior edges twice: a per-vertex weighting only).
    start = triangles.reshape(-1)
    end = triangles[:, [1, 2, 0]].reshape(-1)
    edge = (vertices[..., end, :] - vertices[..., start, :]).norm(dim=-1)
    ends = torch.cat([start, end])
    total = torch.zeros(vertices.shape[:-1], dtype=vertices.dtype).index_add(-1, ends, torch.cat([edge, edge], -1))
    count = torch.bincount(ends, minlength=vertices.shape[-2]).to(vertices.dtype)
    return n, total / count.clamp_min(1)


def rotation_between(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) the smallest rotation taking unit vectors ``a`` (..., 3) onto ``b`` (..., 3) (Rodrigues; a
    and b are never opposite for two faces' normals)."""
    v = torch.linalg.cross(a, b)
    c = (a * b).sum(-1)
    k = torch.zeros(a.shape + (3,), dtype=a.dtype)
    k[..., 0, 1], k[..., 0, 2], k[..., 1, 2] = -v[..., 2], v[..., 1], -v[..., 0]
    k = k - k.transpose(-1, -2)
    eye = torch.eye(3, dtype=a.dtype).expand_as(k)
    return eye + k + k @ k / (1 + c).clamp_min(1e-6)[..., None, None]


def transfer_offsets(offsets: torch.Tensor, source_identity: torch.Tensor, target_identity: torch.Tensor
                     ) -> torch.Tensor:
    """Free face offsets measured on one open-rig face, as they act on another.

    Args:
        offsets: (..., 478, 3) offsets on the source face (template units).
        source_identity, target_identity: (478, 3) the two faces' identity offsets (metres, before scale).

    Returns:
        (..., 478, 3) offsets for the target face (the iris points' are kept as they are).
    """
    template, triangles, _ = load_face_template()
    template = torch.from_numpy(template).to(offsets.dtype)
    tris = torch.from_numpy(triangles)
    n_s, l_s = vertex_frames(template + source_identity.to(offsets.dtype), tris)
    n_t, l_t = vertex_frames(template + target_identity.to(offsets.dtype), tris)
    turn = rotation_between(n_s[:N_MESH], n_t[:N_MESH]) * (l_t[:N_MESH] / l_s[:N_MESH].clamp_min(1e-12))[:, None, None]
    out = offsets.clone()
    out[..., :N_MESH, :] = torch.einsum("vij,...vj->...vi", turn, offsets[..., :N_MESH, :])
    return out
