"""OpenRig: the default head rig, needing no licensed asset.

MediaPipe's face-mesh topology (478 vertices, the last 10 on the irises) closed into a whole head by a
generated shell. Identity is the neutral shape (per-vertex offsets of the face template and a global scale);
expression is a linear basis of named face deformations; head pose is a rigid transform. The shell follows
the pose and blends into the face outline: it takes a share of the outline's identity and expression
offsets that fades to zero over the first rings.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import numpy as np
import torch

from headsplat.core.rotation import axis_angle_to_matrix
from headsplat.core.validate import check_shape
from headsplat.rig.expressions import EXPRESSION_NAMES, build_expression_basis
from headsplat.rig.mesh_ops import boundary_loops
from headsplat.rig.shell import ShellConfig, build_shell

N_FACE = 478


def load_face_template() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The bundled neutral face: vertices (478, 3) metres, triangles (852, 3), mirror (478,) partner indices."""
    with resources.files("headsplat.rig").joinpath("data/mediapipe_face.npz").open("rb") as f:
        d = np.load(f)
        return d["vertices"].astype(np.float64), d["triangles"].astype(np.int64), d["mirror"].astype(np.int64)


@dataclass(frozen=True)
class RigOutput:
    """Posed rig.

    Attributes:
        vertices: (..., V, 3) posed vertices in world space.
        neutral: (..., V, 3) identity shape before expression and pose (head space).
    """

    vertices: torch.Tensor
    neutral: torch.Tensor


def build_mouth_cavity(v: np.ndarray, loop: np.ndarray, first: int, depth: float = 0.03
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A cup behind the inner lip loop: ring 1 just behind the lips, ring 2 deeper, a back pole.

    Args:
        v: (478, 3) face template (metres, face along +z).
        loop: (L,) the inner-lip boundary loop.
        first: index the new vertices start at.
        depth: how far the cavity reaches behind the lips.

    Returns:
        vertices (2L + 1, 3); triangles (M, 3) in global indices; follow (2L + 1, 478) weights of face-vertex
        offsets each new vertex follows (rings follow their lip vertex, the pole the loop's mean); upper (M,)
        whether each triangle hangs off the upper lip.
    """
    n = len(loop)
    lips = v[loop]
    centre = lips.mean(0)
    ring1 = centre + (lips - centre) * np.array([0.95, 0.9, 1.0]) + np.array([0.0, 0.0, -0.25 * depth])
    ring2 = centre + (lips - centre) * np.array([0.8, 0.6, 1.0]) + np.array([0.0, 0.0, -0.7 * depth])
    pole = centre + np.array([0.0, 0.0, -depth])
    verts = np.concatenate([ring1, ring2, pole[None]])
    follow = np.zeros((2 * n + 1, v.shape[0]))
    follow[np.arange(n), loop] = 1.0
    follow[n + np.arange(n), loop] = 1.0
    follow[2 * n, loop] = 1.0 / n
    r1 = first + np.arange(n)
    r2 = first + n + np.arange(n)
    tris = []
    for ring_a, ring_b in ((loop, r1), (r1, r2)):
        for i in range(n):
            j = (i + 1) % n
            tris += [[ring_a[i], ring_a[j], ring_b[i]], [ring_a[j], ring_b[j], ring_b[i]]]
    tris += [[r2[i], r2[(i + 1) % n], first + 2 * n] for i in range(n)]
    tris = np.asarray(tris, np.int64)
    # Upper vs lower lip: above or below the line through the mouth corners (leftmost and rightmost).
    left, right = lips[np.argmin(lips[:, 0])], lips[np.argmax(lips[:, 0])]
    all_v = np.concatenate([v, np.zeros((first - v.shape[0], 3)), verts])
    tri_c = all_v[tris].mean(1)
    t = (tri_c[:, 0] - left[0]) / max(right[0] - left[0], 1e-9)
    upper = tri_c[:, 1] > left[1] + t * (right[1] - left[1])
    return verts, tris, follow, upper


class OpenRig(torch.nn.Module):
    """The open head rig. Buffers only; per-subject parameters are passed to :meth:`forward`.

    Attributes:
        triangles: (F, 3) int64: the face's, the eye fans', then the shell's (``n_face_triangles`` face+eyes).
        mouth_triangles: (M, 3) int64: a cavity behind the lips (an inner ring that follows the lips and a
            back wall), not part of ``triangles``: avatars bind a mouth interior to it; tracking ignores it.
        mouth_upper: (M,) bool: the mouth triangle belongs to the upper half (upper teeth) rather than the
            lower (lower teeth, which follow the jaw).
        template: (V, 3) neutral vertices in metres.
        spread: (V, 478) how each vertex follows face-vertex offsets (identity rows for face vertices,
            fading weights from the outline for the shell).
        basis: (E, 478, 3) expression displacements of the face vertices.
    """

    kind = "open"
    frame_iterations = 150  # the tracker's L-BFGS iterations per window
    expression_names = EXPRESSION_NAMES

    def __init__(self, shell: ShellConfig = ShellConfig()):
        super().__init__()
        v, tris, mirror = load_face_template()
        loops = boundary_loops(tris)
        outline = loops[0]
        shell_v, shell_t, (ring_param, ring_source) = build_shell(v, outline, shell)
        basis = build_expression_basis(v, tris, outline)
        n_shell = len(shell_v)
        spread = np.zeros((N_FACE + n_shell, N_FACE), np.float32)
        spread[np.arange(N_FACE), np.arange(N_FACE)] = 1.0
        fade = np.clip(1 - ring_param / shell.blend, 0, 1) ** 2
        has_src = ring_source >= 0
        spread[N_FACE + np.flatnonzero(has_src), ring_source[has_src].astype(np.int64)] = fade[has_src]
        # Close the eye holes (the two 16-vertex loops) with fans; they collapse when the lids close.
        eyes = [lp for lp in loops[1:] if len(lp) == 16]
        eye_t = np.concatenate([np.stack([np.full(len(lp) - 2, lp[0]), lp[2:], lp[1:-1]], 1) for lp in eyes])
        tris = np.concatenate([tris, eye_t])
        self.n_face_triangles = len(tris)
        # The mouth hole (the 20-vertex loop) gets a cavity behind it, for avatars only.
        mouth_loop = next(lp for lp in loops[1:] if len(lp) == 20)
        mouth_v, mouth_t, mouth_follow, upper = build_mouth_cavity(v, mouth_loop, N_FACE + len(shell_v))
        spread = np.concatenate([spread, mouth_follow.astype(np.float32)])
        shell_v = np.concatenate([shell_v, mouth_v])
        self.outline = outline
        self.register_buffer("template", torch.from_numpy(np.concatenate([v, shell_v]).astype(np.float32)))
        self.register_buffer("triangles", torch.from_numpy(np.concatenate([tris, shell_t]).astype(np.int64)))
        self.register_buffer("spread", torch.from_numpy(spread))
        self.register_buffer("basis", torch.from_numpy(basis))
        self.register_buffer("mirror", torch.from_numpy(mirror))
        self.register_buffer("mouth_triangles", torch.from_numpy(mouth_t))
        self.register_buffer("mouth_upper", torch.from_numpy(upper))

    @property
    def n_vertices(self) -> int:
        return self.template.shape[0]

    @property
    def n_expressions(self) -> int:
        return self.basis.shape[0]

    @property
    def identity_shape(self) -> tuple[int, ...]:
        """Shape of the identity parameter: per-vertex offsets of the 478 face vertices."""
        return (N_FACE, 3)

    @property
    def fit_points(self) -> np.ndarray:
        """MediaPipe landmarks the tracker fits: the 468 mesh points (the iris points move with gaze, which
        this rig does not model)."""
        return np.arange(468)

    def expression_prior_weights(self) -> torch.Tensor:
        """(E,) relative weights of the tracker's magnitude prior on each expression coefficient."""
        return torch.ones(self.n_expressions)

    def point_weights(self) -> torch.Tensor:
        """(478,) weight of each landmark in the fit (all equal)."""
        return torch.ones(N_FACE)

    def neutral_landmarks(self) -> torch.Tensor:
        """(478, 3) the MediaPipe landmarks of the neutral template, head space."""
        return self.template[:N_FACE]

    def triangle_parts(self) -> torch.Tensor:
        """(F + M,) int64 part of each avatar triangle (``triangles`` then ``mouth_triangles``): 0 face (and
        eyes), 1 the rest of the head, 2 mouth interior."""
        n_head, n_mouth = len(self.triangles), len(self.mouth_triangles)
        part = torch.ones(n_head + n_mouth, dtype=torch.int64)
        part[: self.n_face_triangles] = 0
        part[n_head:] = 2
        return part

    def landmarks(self, identity: torch.Tensor, scale: torch.Tensor, expression: torch.Tensor,
                  rotation: torch.Tensor, translation: torch.Tensor) -> torch.Tensor:
        """(..., 478, 3) posed positions of the MediaPipe landmarks (the face vertices themselves)."""
        return self(identity, scale, expression, rotation, translation, face_only=True).vertices

    def neutral(self, identity: torch.Tensor, scale: torch.Tensor, face_only: bool = False) -> torch.Tensor:
        """Identity shape in head space.

        Args:
            identity: (..., 478, 3) identity offsets of the face vertices from the template, metres.
            scale: (...) global size factor.
            face_only: return only the 478 face vertices (cheaper, for landmark fitting).

        Returns:
            (..., V, 3) or (..., 478, 3) vertices.
        """
        check_shape("identity", identity, ("...", N_FACE, 3))
        if face_only:
            base = self.template[:N_FACE] + identity
        else:
            base = self.template + self.spread @ identity
        return base * scale[..., None, None]

    def forward(self, identity: torch.Tensor, scale: torch.Tensor, expression: torch.Tensor,
                rotation: torch.Tensor, translation: torch.Tensor, face_only: bool = False) -> RigOutput:
        """Pose the rig.

        Args:
            identity: (..., 478, 3) identity offsets (broadcast against the frame dims).
            scale: (...) identity scale.
            expression: (..., E) expression coefficients (0 is neutral).
            rotation: (..., 3) head rotation, axis-angle, applied about the head-space origin.
            translation: (..., 3) head position in world space, metres.
            face_only: only the 478 face vertices.

        Returns:
            :class:`RigOutput` with (..., V, 3) tensors.
        """
        check_shape("expression", expression, ("...", self.n_expressions))
        check_shape("rotation", rotation, ("...", 3))
        check_shape("translation", translation, ("...", 3))
        # 1. identity: the neutral shape
        neutral = self.neutral(identity, scale, face_only)
        # 2. expression: linear displacements of the face, spread onto the shell
        disp = torch.einsum("...e,evc->...vc", expression, self.basis)
        if not face_only:
            disp = self.spread @ disp
        shaped = neutral + disp * scale[..., None, None]
        # 3. pose: rigid transform about the head-space origin
        rot = axis_angle_to_matrix(rotation)
        posed = shaped @ rot.transpose(-1, -2) + translation[..., None, :]
        return RigOutput(posed, neutral)
