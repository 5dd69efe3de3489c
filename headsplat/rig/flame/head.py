"""FlameHead: FLAME presented as a head rig for tracking and avatars, with the same interface as OpenRig.

A FLAME head's per-frame parameters are one vector, like the open rig's expression: the first ``n_expr``
FLAME expression coefficients, then the jaw rotation (3, axis-angle) and the left and right eye rotations
(3 + 3); their names say which is which. Head pose is a rigid transform applied after FLAME (FLAME's own
global rotation and neck stay at zero: face landmarks cannot tell a neck turn from a head turn), about the
FLAME origin, so a tracked rotation/translation means the same as for the open rig. Identity is FLAME's shape
coefficients and a global scale.

MediaPipe's landmarks sit on the FLAME surface through a :class:`LandmarkEmbedding`; the two iris centres are
the front points of the eyeballs, so the eye rotations are tracked from them. Avatars bind to FLAME's
triangles plus a mouth cavity built behind the lips' boundary loop whose rings are carried by their lip vertex
(skinning included, so the lower half opens with the jaw).
"""

from __future__ import annotations

import math
import os
from dataclasses import replace

import numpy as np
import torch

from headsplat.core.errors import InputError
from headsplat.core.rotation import axis_angle_to_matrix
from headsplat.core.validate import check_shape
from headsplat.face.indices import LEFT_IRIS, LIPS_INNER_LOWER, LIPS_INNER_UPPER, RIGHT_IRIS
from headsplat.rig.base import RigOutput
from headsplat.rig.flame.embedding import LandmarkEmbedding, file_digest, flame_embedding
from headsplat.rig.flame.loader import load_flame_file
from headsplat.rig.flame.model import FlameRig
from headsplat.rig.mesh_ops import boundary_loops
from headsplat.rig.open_rig import CAVITY, TEETH, build_mouth_cavity, load_face_template

LEFT_EYE, RIGHT_EYE = 3, 4  # FLAME's joints: global, neck, jaw, left eye, right eye
POSE_NAMES = ("jaw_rx", "jaw_ry", "jaw_rz", "eye_l_rx", "eye_l_ry", "eye_l_rz", "eye_r_rx", "eye_r_ry", "eye_r_rz")


def _joint_owner(rig: FlameRig) -> np.ndarray:
    """(V,) the joint each vertex is skinned to most (eyeball vertices: an eye joint)."""
    return rig.weights.argmax(1).numpy()


def eyeball_vertices(rig: FlameRig) -> np.ndarray:
    """(V,) bool: the vertices of FLAME's two eyeball meshes (skinned to an eye joint most)."""
    return np.isin(_joint_owner(rig), (LEFT_EYE, RIGHT_EYE))


def _pupils(rig: FlameRig) -> dict[int, int]:
    """The front vertex of each eyeball: {joint: vertex}."""
    owner = _joint_owner(rig)
    v = rig.v_template.numpy()
    out = {}
    for joint in (LEFT_EYE, RIGHT_EYE):
        ids = np.flatnonzero(owner == joint)
        if len(ids):
            out[joint] = int(ids[np.argmax(v[ids, 2])])
    return out


def _mouth_loop(faces: np.ndarray, v: np.ndarray, lips: np.ndarray, path) -> np.ndarray:
    """The boundary loop of the mouth opening: the one closest to the inner-lip landmarks."""
    loops = [lp for lp in boundary_loops(faces) if 6 <= len(lp) <= 400]
    if loops:
        dist = [np.linalg.norm(v[lp].mean(0) - lips.mean(0)) for lp in loops]
        best = int(np.argmin(dist))
        if dist[best] < 0.015:
            return loops[best]
    raise InputError(f"{path}: this FLAME mesh has no mouth opening between the lips; headsplat needs one to "
                     "add a mouth interior (the official FLAME 2020/2023 meshes have it)")


class FlameHead(torch.nn.Module):
    """FLAME as a head rig (see the module docstring).

    Args:
        rig: the loaded FLAME model.
        embedding: MediaPipe landmarks on its surface.
        n_expr: expression coefficients tracked and animated (the first ``n_expr`` of the model's).
        n_shape: shape coefficients fitted.
    """

    kind = "flame"
    frame_iterations = 400  # the tracker's L-BFGS iterations per window (jaw and eyes make it stiffer)

    def __init__(self, rig: FlameRig, embedding: LandmarkEmbedding, n_shape: int = 100, n_expr: int = 50):
        super().__init__()
        n_shape, n_expr = min(n_shape, rig.n_shape), min(n_expr, rig.n_expressions)
        self.flame = rig
        self.path = rig.path
        self.version = rig.version
        self.digest = ""  # the file's SHA-1 prefix, set by from_file
        self.n_shape, self.n_expr = n_shape, n_expr
        self.expression_names = tuple(f"expr_{i:03d}" for i in range(n_expr)) + POSE_NAMES
        faces = rig.triangles.numpy()
        v = rig.v_template.double().numpy()
        # MediaPipe landmark -> (3 vertices, 3 weights); iris centres -> their eye's pupil vertex
        lmk_tri = np.zeros((478, 3), np.int64)
        lmk_w = np.zeros((478, 3))
        on_mesh = embedding.landmark_indices < 468
        lmk_tri[embedding.landmark_indices[on_mesh]] = faces[embedding.face_idx[on_mesh]]
        lmk_w[embedding.landmark_indices[on_mesh]] = embedding.bary[on_mesh]
        fit = set(int(i) for i in embedding.landmark_indices[on_mesh])
        mp, _, _ = load_face_template()
        joints = rig.J_regressor.double().numpy() @ v
        for joint, vertex in _pupils(rig).items():
            # the MediaPipe iris on the same side (x sign) as this eye joint
            iris = RIGHT_IRIS if np.sign(mp[RIGHT_IRIS[0], 0]) == np.sign(joints[joint, 0]) else LEFT_IRIS
            lmk_tri[iris[0]] = vertex
            lmk_w[iris[0]] = (1.0, 0.0, 0.0)
            fit.add(int(iris[0]))
        self._fit_points = np.array(sorted(fit), np.int64)
        self.register_buffer("lmk_ids", torch.from_numpy(np.unique(lmk_tri[self._fit_points])))
        # landmark rows as indices into lmk_ids
        self.register_buffer("lmk_tri", torch.from_numpy(np.searchsorted(self.lmk_ids.numpy(), lmk_tri)))
        self.register_buffer("lmk_w", torch.from_numpy(lmk_w).float())
        # mouth cavity behind the lips' boundary loop
        def rest(rows):  # those landmarks on the template
            return (lmk_w[rows, :, None] * v[lmk_tri[rows]]).sum(1)

        inner_lips = np.unique(np.concatenate([LIPS_INNER_UPPER, LIPS_INNER_LOWER]))
        loop = _mouth_loop(faces, v, rest(inner_lips), self.path)
        cav_v, cav_t, follow, upper = build_mouth_cavity(v, loop, len(v))
        follow = follow[:, loop]  # (C, L) weights over the loop vertices
        self.register_buffer("mouth_loop", torch.from_numpy(loop.astype(np.int64)))
        self.register_buffer("mouth_follow", torch.from_numpy(follow).float())
        self.register_buffer("mouth_rest_offset", torch.from_numpy(cav_v - follow @ v[loop]).float())
        self.register_buffer("triangles", rig.triangles.clone())
        self.register_buffer("mouth_triangles", torch.from_numpy(cav_t))
        self.register_buffer("mouth_upper", torch.from_numpy(upper))
        # Teeth on the band from the lips to the cavity's first ring (FLAME has no teeth), dark cavity beyond.
        material = np.full(len(cav_t), CAVITY, np.int64)
        material[: 2 * len(cav_t) // 5] = TEETH
        self.register_buffer("mouth_material", torch.from_numpy(material))
        # No avatar triangle pins its Gaussians to the surface (the open rig pins its eyeballs and teeth), and
        # none gets the open rig's dense eye layers (FLAME's eyeballs are its own mesh).
        self.register_buffer("surface_bound", torch.zeros(len(faces) + len(cav_t), dtype=torch.bool))
        self.register_buffer("eye_rims", torch.zeros(len(faces) + len(cav_t), dtype=torch.bool))
        self.register_buffer("eyeball_triangles", torch.zeros(len(faces) + len(cav_t), dtype=torch.bool))
        # face part: triangles within 8 mm of a landmark on the template (the rest is scalp, ears, neck, eyes)
        from scipy.spatial import cKDTree

        d, _ = cKDTree(rest(self._fit_points)).query(v[faces].mean(1))
        self.register_buffer("_face_tris", torch.from_numpy(d < 0.008))

    @classmethod
    def from_file(cls, path: str | os.PathLike, embedding: str | os.PathLike | None = None, n_shape: int = 100,
                  n_expr: int = 50, cache_dir: str | os.PathLike | None = None) -> "FlameHead":
        """Load a FLAME file and its MediaPipe embedding (``embedding``: a user's .npz; default: computed from
        the file once and cached, see :func:`~headsplat.rig.flame.embedding.flame_embedding`)."""
        data = load_flame_file(path)
        # only the coefficients the head uses: every pose then sums over fewer directions
        n_shape, n_expr = min(n_shape, data.shapedirs.shape[-1]), min(n_expr, data.exprdirs.shape[-1])
        rig = FlameRig(replace(data, shapedirs=data.shapedirs[..., :n_shape].copy(),
                               exprdirs=data.exprdirs[..., :n_expr].copy()))
        eyeball = eyeball_vertices(rig)
        surface = ~eyeball[rig.triangles.numpy()].all(1)
        emb = flame_embedding(path, rig.v_template.numpy(), rig.triangles.numpy(), override=embedding,
                              cache_dir=cache_dir, surface=surface)
        head = cls(rig, emb, n_shape, n_expr)
        head.digest = file_digest(path)
        return head

    def describe(self) -> dict:
        """The model this head was built from (recorded in tracking and avatar files)."""
        return {"version": self.version, "file": str(self.path), "sha1": self.digest,
                "n_shape": self.n_shape, "n_expr": self.n_expr}

    # -- the head-rig interface (shared with OpenRig) -------------------------------------------------------
    @property
    def identity_shape(self) -> tuple[int, ...]:
        return (self.n_shape,)

    @property
    def n_expressions(self) -> int:
        return len(self.expression_names)

    @property
    def fit_points(self) -> np.ndarray:
        """MediaPipe landmarks the tracker fits: those embedded on the surface and the iris centres."""
        return self._fit_points

    @property
    def n_vertices(self) -> int:
        return self.flame.v_template.shape[0] + self.mouth_follow.shape[0]

    def expression_prior_weights(self) -> torch.Tensor:
        """(E,) relative weights of the tracker's magnitude prior (the open rig's coefficients, 0..1, weigh 1):
        FLAME's unit-variance expression coefficients 0.02, jaw opening 0.1, jaw sideways/twist 30 (rare and
        small), eyes 0.1."""
        w = torch.full((self.n_expressions,), 0.02)
        w[self.n_expr] = 0.1
        w[self.n_expr + 1: self.n_expr + 3] = 30.0
        w[self.n_expr + 3:] = 0.1
        return w

    def expression_lower_bounds(self) -> torch.Tensor:
        """(E,) no bounds: FLAME's expression coefficients and joint rotations go both ways."""
        return torch.full((self.n_expressions,), -math.inf)

    def expression_smoothing_weights(self) -> torch.Tensor:
        """(E,) relative weights of the tracker's temporal smoothing of each coefficient (all equal)."""
        return torch.ones(self.n_expressions)

    def point_weights(self) -> torch.Tensor:
        """(478,) weight of each landmark in the fit: the iris centres, the only cue for the eyes, count ten."""
        w = torch.ones(478)
        w[[RIGHT_IRIS[0], LEFT_IRIS[0]]] = 10.0
        return w

    def triangle_parts(self) -> torch.Tensor:
        """(F + M,) int64: 0 face, 1 the rest of the head, 2 mouth interior."""
        part = torch.ones(len(self.triangles) + len(self.mouth_triangles), dtype=torch.int64)
        part[: len(self.triangles)][self._face_tris] = 0
        part[len(self.triangles):] = 2
        return part

    def neutral_landmarks(self) -> torch.Tensor:
        """(478, 3) landmarks on the template (zeros where not embedded)."""
        return self._landmarks_from(self.flame.v_template[self.lmk_ids])

    def _split(self, expression: torch.Tensor):
        e = self.n_expr
        expr = torch.nn.functional.pad(expression[..., :e], (0, self.flame.n_expressions - e))
        return expr, expression[..., e:e + 3], expression[..., e + 3:e + 9]

    def _shape(self, identity: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.pad(identity, (0, self.flame.n_shape - identity.shape[-1]))

    def _landmarks_from(self, verts: torch.Tensor) -> torch.Tensor:
        corners = verts[..., self.lmk_tri, :]  # (..., 478, 3, 3)
        return (self.lmk_w.to(verts.dtype)[..., None] * corners).sum(-2)

    def _rigid(self, x: torch.Tensor, scale, rotation, translation) -> torch.Tensor:
        rot = axis_angle_to_matrix(rotation)
        return (x * scale[..., None, None]) @ rot.transpose(-1, -2) + translation[..., None, :]

    def landmarks(self, identity: torch.Tensor, scale: torch.Tensor, expression: torch.Tensor,
                  rotation: torch.Tensor, translation: torch.Tensor) -> torch.Tensor:
        """(..., 478, 3) posed MediaPipe landmarks (rows outside ``fit_points`` are meaningless)."""
        self._check(identity, expression)
        expr, jaw, eyes = self._split(expression)
        zero = torch.zeros_like(jaw)
        out = self.flame(self._shape(identity), expr, zero, zero, jaw, eyes, zero, vertex_ids=self.lmk_ids)
        return self._rigid(self._landmarks_from(out.vertices), scale, rotation, translation)

    def _check(self, identity, expression):
        check_shape("identity", identity, ("...", self.n_shape))
        check_shape("expression", expression, ("...", self.n_expressions))

    def flame_vertices(self, identity: torch.Tensor, expression: torch.Tensor) -> torch.Tensor:
        """(..., V, 3) FLAME's own vertices (no mouth cavity) in head space, metres: shape, expression, jaw and
        eyes applied, no head rotation or translation (what learned models built on FLAME take)."""
        self._check(identity, expression)
        expr, jaw, eyes = self._split(expression)
        zero = torch.zeros_like(jaw)
        return self.flame(self._shape(identity), expr, zero, zero, jaw, eyes, zero).vertices

    def forward(self, identity: torch.Tensor, scale: torch.Tensor, expression: torch.Tensor,
                rotation: torch.Tensor, translation: torch.Tensor) -> RigOutput:
        """Pose the head: FLAME's vertices followed by the mouth cavity's.

        Args:
            identity: (..., S) shape coefficients. scale: (...) size factor. expression: (..., E) see
                ``expression_names``. rotation: (..., 3) axis-angle head rotation about the FLAME origin.
                translation: (..., 3) metres.

        Returns:
            :class:`RigOutput` with vertices (..., V + C, 3) and the neutral shape (..., V, 3) in head space.
        """
        self._check(identity, expression)
        expr, jaw, eyes = self._split(expression)
        zero = torch.zeros_like(jaw)
        shape = self._shape(identity)
        out = self.flame(shape, expr, zero, zero, jaw, eyes, zero)
        verts = out.vertices
        # cavity vertices ride on their lip vertices: position and skinning rotation
        loop_tf = torch.einsum("lj,...jab->...lab", self.flame.weights[self.mouth_loop].to(verts.dtype),
                               out.transforms)
        follow = self.mouth_follow.to(verts.dtype)
        anchor = follow @ verts[..., self.mouth_loop, :]
        rot = torch.einsum("cl,...lab->...cab", follow, loop_tf[..., :3, :3])
        cavity = anchor + (rot @ self.mouth_rest_offset.to(verts.dtype)[..., None])[..., 0]
        posed = self._rigid(torch.cat([verts, cavity], -2), scale, rotation, translation)
        neutral = (self.flame.v_template + torch.einsum("...s,vcs->...vc", shape, self.flame.shapedirs)) \
            * scale[..., None, None]
        return RigOutput(posed, neutral)
