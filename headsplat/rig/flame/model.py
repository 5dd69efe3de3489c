"""FlameRig: the FLAME head model as a module of buffers, with a stateless linear-blend-skinning forward."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from headsplat.core.rotation import axis_angle_to_matrix
from headsplat.core.validate import check_shape
from headsplat.rig.flame.loader import FlameModelData, load_flame_file


@dataclass(frozen=True)
class FlameOutput:
    """Posed FLAME.

    Attributes:
        vertices: (..., V, 3) posed vertices, metres.
        joints: (..., J, 3) posed joint positions.
        transforms: (..., J, 4, 4) world transform of each joint relative to its rest position
            (what skinning applies; J = 5: global, neck, jaw, left eye, right eye).
    """

    vertices: torch.Tensor
    joints: torch.Tensor
    transforms: torch.Tensor


def lbs(shape: torch.Tensor, expression: torch.Tensor, pose: torch.Tensor, v_template: torch.Tensor,
        shapedirs: torch.Tensor, exprdirs: torch.Tensor, posedirs: torch.Tensor,
        joint_basis: tuple[torch.Tensor, torch.Tensor, torch.Tensor], parents: list[int], weights: torch.Tensor,
        vertex_ids: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Linear blend skinning with pose correctives (the FLAME/SMPL model).

    Args:
        shape: (..., S). expression: (..., E). pose: (..., J, 3) axis-angle per joint.
        v_template: (V, 3). shapedirs: (V, 3, S). exprdirs: (V, 3, E). posedirs: (9 (J - 1), 3 V).
        joint_basis: the joint regressor (J, V) applied to the template, the shape and the expression
            directions: (J, 3), (J, 3, S), (J, 3, E) (see :func:`joint_basis`); it is linear, so the rest joints
            of a shaped mesh come from these without regressing every vertex.
        parents: J parent indices (-1 for the root). weights: (V, J).
        vertex_ids: (K,) pose only these vertices (the joints still come from the whole mesh); all when None.

    Returns:
        vertices (..., V or K, 3), joints (..., J, 3), joint transforms (..., J, 4, 4).
    """
    # 1. rest joints of the shaped mesh
    j_template, j_shapedirs, j_exprdirs = joint_basis
    joints = j_template + torch.einsum("...s,jcs->...jc", shape, j_shapedirs) \
        + torch.einsum("...e,jce->...jc", expression, j_exprdirs)
    # 2. identity and expression blend shapes
    if vertex_ids is not None:
        v_template, shapedirs, exprdirs, weights = (x[vertex_ids] for x in (v_template, shapedirs, exprdirs, weights))
        posedirs = posedirs.unflatten(-1, (-1, 3))[:, vertex_ids].flatten(-2)
    v_shaped = v_template + torch.einsum("...s,vcs->...vc", shape, shapedirs) \
        + torch.einsum("...e,vce->...vc", expression, exprdirs)
    # 3. pose correctives from the non-root joint rotations
    rot = axis_angle_to_matrix(pose)  # (..., J, 3, 3)
    eye = torch.eye(3, dtype=rot.dtype, device=rot.device)
    pose_feature = (rot[..., 1:, :, :] - eye).flatten(-3)  # (..., 9 (J - 1))
    v_posed = v_shaped + (pose_feature @ posedirs).unflatten(-1, (-1, 3))
    # 4. the kinematic chain: each joint's world transform
    rel = joints.clone()
    rel[..., 1:, :] = joints[..., 1:, :] - joints[..., parents[1:], :]
    local = torch.cat([torch.cat([rot, rel[..., None]], -1),
                       torch.zeros(*rot.shape[:-2], 1, 4, dtype=rot.dtype, device=rot.device)], -2)
    local[..., 3, 3] = 1
    chain = [local[..., 0, :, :]]
    for j in range(1, len(parents)):
        chain.append(chain[parents[j]] @ local[..., j, :, :])
    world = torch.stack(chain, -3)  # (..., J, 4, 4)
    posed_joints = world[..., :3, 3]
    # transforms relative to the rest pose: subtract the rotated rest joint
    offset = (world[..., :3, :3] @ joints[..., None])[..., 0]
    rel_tf = world.clone()
    rel_tf[..., :3, 3] = world[..., :3, 3] - offset
    # 5. skinning
    blend = torch.einsum("vj,...jab->...vab", weights, rel_tf)
    verts = (blend[..., :3, :3] @ v_posed[..., None])[..., 0] + blend[..., :3, 3]
    return verts, posed_joints, rel_tf


def joint_basis(J_regressor: torch.Tensor, v_template: torch.Tensor, shapedirs: torch.Tensor,
                exprdirs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The joint regressor (J, V) applied to the template (V, 3) and the directions (V, 3, S), (V, 3, E):
    (J, 3), (J, 3, S), (J, 3, E)."""
    return (J_regressor @ v_template, torch.einsum("jv,vcs->jcs", J_regressor, shapedirs),
            torch.einsum("jv,vce->jce", J_regressor, exprdirs))


class FlameRig(torch.nn.Module):
    """FLAME from the user's official model file. Buffers only; per-subject parameters go to :meth:`forward`.

    Args:
        data: arrays from :func:`~headsplat.rig.flame.loader.load_flame_file`.
    """

    kind = "flame"

    def __init__(self, data: FlameModelData):
        super().__init__()
        self.version = data.version
        self.path = data.path
        self.parents = [int(p) for p in data.parents]
        for name in ("v_template", "shapedirs", "exprdirs", "posedirs", "J_regressor", "weights"):
            self.register_buffer(name, torch.from_numpy(getattr(data, name)))
        self.register_buffer("triangles", torch.from_numpy(data.faces))
        self._update_joint_basis()

    def _update_joint_basis(self) -> None:
        # Derived once per dtype/device, not per pose: every pose needs the rest joints, a regression over the
        # whole mesh. Computed from the module's own (cast) buffers, so .double() gives float64 joints.
        self.rest_joint_basis = joint_basis(self.J_regressor, self.v_template, self.shapedirs, self.exprdirs)

    def _apply(self, fn, *args, **kwargs):
        super()._apply(fn, *args, **kwargs)
        self._update_joint_basis()
        return self

    @classmethod
    def from_file(cls, path: str | os.PathLike, n_shape: int = 300, n_expr: int = 100) -> "FlameRig":
        return cls(load_flame_file(path, n_shape, n_expr))

    @property
    def n_shape(self) -> int:
        return self.shapedirs.shape[-1]

    @property
    def n_expressions(self) -> int:
        return self.exprdirs.shape[-1]

    def forward(self, shape: torch.Tensor, expression: torch.Tensor, global_rotation: torch.Tensor,
                neck: torch.Tensor, jaw: torch.Tensor, eyes: torch.Tensor, translation: torch.Tensor,
                vertex_ids: torch.Tensor | None = None) -> FlameOutput:
        """Pose FLAME.

        Args:
            shape: (..., S) identity coefficients. expression: (..., E).
            global_rotation, neck, jaw: (..., 3) axis-angle. eyes: (..., 6) left then right eye axis-angle.
            translation: (..., 3) metres.
            vertex_ids: (K,) return only these vertices (cheaper, e.g. for landmark fitting).
        """
        check_shape("shape", shape, ("...", self.n_shape))
        check_shape("expression", expression, ("...", self.n_expressions))
        check_shape("eyes", eyes, ("...", 6))
        pose = torch.stack([global_rotation, neck, jaw, eyes[..., :3], eyes[..., 3:]], -2)
        verts, joints, tf = lbs(shape, expression, pose, self.v_template, self.shapedirs, self.exprdirs,
                                self.posedirs, self.rest_joint_basis, self.parents, self.weights, vertex_ids)
        t = translation[..., None, :]
        tf = tf.clone()
        tf[..., :3, 3] = tf[..., :3, 3] + t
        return FlameOutput(verts + t, joints + t, tf)
