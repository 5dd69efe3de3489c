"""FLAME as Portrait4D's deformer evaluates it (DECA's ``FLAME`` with ``flame_full``: 300 shape + 100
expression, pose = neck (3) + jaw (3), eyes (6), global rotation fixed at zero), from the buffers stored in the
released checkpoint (``deformer.flame_deform.flame_model.*``: the model scaled x3 and re-centred on the canonical
neck joint).

Pure functions; the order of operations follows the reference so that results agree to float rounding. The
landmarks DECA's forward also returns are not computed.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from headsplat.core.errors import InputError
from headsplat.models.portrait4d.deformer import PoseField

FLAME_PREFIX = "flame_deform.flame_model."
#: DECA's rotation limits (degrees): neck, jaw, eyes (applied only with ``use_rotation_limits``)
NECK_LIMITS = ((-90, 90), (-60, 60), (-80, 80))
JAW_LIMITS = ((-5, 60), (-0.1, 0.1), (-0.1, 0.1))
EYE_LIMITS = ((-50, 50), (-50, 50), (-0.1, 0.1))


def rodrigues(rot_vecs: torch.Tensor) -> torch.Tensor:
    """(N, 3) axis-angle -> (N, 3, 3), as DECA's ``batch_rodrigues`` (the angle is the norm of ``v + 1e-8``)."""
    n = rot_vecs.shape[0]
    angle = torch.norm(rot_vecs + 1e-8, dim=1, keepdim=True)
    rx, ry, rz = torch.split(rot_vecs / angle, 1, dim=1)
    cos, sin = torch.cos(angle)[:, None], torch.sin(angle)[:, None]
    zeros = torch.zeros((n, 1), dtype=rot_vecs.dtype, device=rot_vecs.device)
    K = torch.cat([zeros, -rz, ry, rz, zeros, -rx, -ry, rx, zeros], dim=1).view(n, 3, 3)
    ident = torch.eye(3, dtype=rot_vecs.dtype, device=rot_vecs.device)[None]
    return ident + sin * K + (1 - cos) * torch.bmm(K, K)


def _limit(rotation: torch.Tensor, limits) -> torch.Tensor:
    """DECA's ``_apply_rotation_limit``: tanh squashed into ``limits`` ((3, 2) radians, or degrees as tuples)."""
    lim = limits if isinstance(limits, torch.Tensor) else torch.tensor(limits).float() / 180 * math.pi
    lim = lim.to(rotation.device)
    lo, hi = lim[:, 0].view(1, 3), lim[:, 1].view(1, 3)
    return lo + (torch.tanh(rotation) + 1) / 2 * (hi - lo)


def flame_forward(buffers: dict[str, torch.Tensor], shape: torch.Tensor, expression: torch.Tensor,
                  pose: torch.Tensor, eye_pose: torch.Tensor, use_rotation_limits: bool = False
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Posed FLAME vertices and joints.

    Args:
        buffers: ``v_template`` (V, 3), ``shapedirs`` (V, 3, 400), ``posedirs`` (36, 3V), ``J_regressor`` (5, V),
            ``parents`` (5,), ``lbs_weights`` (V, 5).
        shape: (B, 300). expression: (B, 100). pose: (B, 6) neck + jaw. eye_pose: (B, 6).

    Returns:
        vertices (B, V, 3), joints (B, 5, 3).
    """
    b = shape.shape[0]
    if use_rotation_limits:  # the checkpoint's limit buffers when present, DECA's constants otherwise
        neck, jaw, eye = (buffers.get(k, d) for k, d in (("neck_limits", NECK_LIMITS), ("jaw_limits", JAW_LIMITS),
                                                          ("eye_limits", EYE_LIMITS)))
        pose = torch.cat([_limit(pose[:, :3], neck), _limit(pose[:, 3:], jaw)], -1)
        eye_pose = torch.cat([_limit(eye_pose[:, :3], eye), _limit(eye_pose[:, 3:], eye)], 1)
    full_pose = torch.cat([torch.zeros_like(pose[:, :3]), pose[:, :3], pose[:, 3:], eye_pose], 1)
    betas = torch.cat([shape, expression], 1)
    parents = buffers["parents"]
    # 1. shaped template, rest joints
    v_shaped = buffers["v_template"][None].expand(b, -1, -1) + torch.einsum("bl,mkl->bmk", betas,
                                                                            buffers["shapedirs"])
    joints = torch.einsum("bik,ji->bjk", v_shaped, buffers["J_regressor"])
    # 2. pose correctives
    rot = rodrigues(full_pose.view(-1, 3)).view(b, -1, 3, 3)
    ident = torch.eye(3, dtype=rot.dtype, device=rot.device)
    v_posed = torch.matmul((rot[:, 1:] - ident).view(b, -1), buffers["posedirs"]).view(b, -1, 3) + v_shaped
    # 3. kinematic chain
    j = joints[..., None]
    rel = j.clone()
    rel[:, 1:] -= j[:, parents[1:]]
    local = torch.cat([F.pad(rot.view(-1, 3, 3), [0, 0, 0, 1]), F.pad(rel.reshape(-1, 3, 1), [0, 0, 0, 1], value=1)],
                      dim=2).reshape(-1, j.shape[1], 4, 4)
    chain = [local[:, 0]]
    for i in range(1, parents.shape[0]):
        chain.append(torch.matmul(chain[int(parents[i])], local[:, i]))
    transforms = torch.stack(chain, dim=1)
    posed_joints = transforms[:, :, :3, 3]
    rel_tf = transforms - F.pad(torch.matmul(transforms, F.pad(j, [0, 0, 0, 1])), [3, 0, 0, 0, 0, 0, 0, 0])
    # 4. skinning
    T = torch.matmul(buffers["lbs_weights"][None].expand(b, -1, -1), rel_tf.view(b, -1, 16)).view(b, -1, 4, 4)
    homo = torch.cat([v_posed, torch.ones_like(v_posed[..., :1])], 2)
    return torch.matmul(T, homo[..., None])[:, :, :3, 0], posed_joints


class HeadPoseDeformer:
    """Portrait4D's ``DeformationModuleOnlyHead`` from the checkpoint's ``deformer.*`` tensors (as
    :attr:`~headsplat.models.portrait4d.model.Portrait4D.deformer_state` holds them, prefix removed): FLAME on
    the simplified mesh with and without the neck rotation, then :func:`.deformer.head_pose_deformation`."""

    NEEDED = ("v_template", "shapedirs", "posedirs", "J_regressor", "parents", "lbs_weights")
    LIMITS = ("neck_limits", "jaw_limits", "eye_limits")

    def __init__(self, state: dict[str, torch.Tensor], box_warp: float = 1.3):
        missing = [FLAME_PREFIX + k for k in self.NEEDED if FLAME_PREFIX + k not in state]
        missing += [f"flame_deform.simplify_{k}" for k in ("idxs", "baris", "faces")
                    if f"flame_deform.simplify_{k}" not in state]
        if missing:
            raise InputError(f"deformer state lacks {len(missing)} tensors: {', '.join(missing[:4])}")
        self.flame = {k: state[FLAME_PREFIX + k] for k in self.NEEDED + self.LIMITS if FLAME_PREFIX + k in state}
        self.simplify_idxs = state["flame_deform.simplify_idxs"]
        self.simplify_baris = state["flame_deform.simplify_baris"]
        self.simplify_faces = state["flame_deform.simplify_faces"]
        self.box_warp = box_warp

    def simplified(self, vertices: torch.Tensor) -> torch.Tensor:
        """(B, V, 3) full mesh -> (B, V', 3) the simplified mesh's vertices (barycentric in the full mesh)."""
        return torch.sum(vertices[:, self.simplify_idxs] * self.simplify_baris[None, ..., None], dim=-2)

    def field(self, shape: torch.Tensor, expression: torch.Tensor, pose: torch.Tensor, eye_pose: torch.Tensor,
              use_rotation_limits: bool = False, smooth_th: float = 3e-3):
        """The deformation (points (B, P, 3) -> canonical points) for one set of FLAME parameters, as
        ``Portrait4D.synthesis`` takes it (its grids computed here, once for both of the renderer's passes)."""
        posed = self.simplified(flame_forward(self.flame, shape, expression, pose, eye_pose, use_rotation_limits)[0])
        no_neck = torch.cat([torch.zeros_like(pose[..., :3]), pose[..., 3:]], -1)
        unposed = self.simplified(flame_forward(self.flame, shape, expression, no_neck, eye_pose,
                                                use_rotation_limits)[0])
        return PoseField(posed, unposed, self.simplify_faces, self.box_warp, smooth_th)
