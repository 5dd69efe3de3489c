"""OpenRig: the default head rig, needing no licensed asset.

MediaPipe's face-mesh topology (478 vertices, the last 10 on the irises) closed into a whole head by a
generated shell. Identity is the neutral shape (per-vertex offsets of the face template and a global scale);
expression is a linear basis of named face deformations; head pose is a rigid transform. The shell follows
the pose and blends into the face outline: it takes a share of the outline's identity and expression
offsets that fades to zero over the first rings.

Inside the face: two eyeballs (caps behind the lid openings, larger than them, following the identity but not
the expression, so closing lids slide over them) and a mouth: a dark cavity behind the lips, two rows of
teeth along the lip contour (the upper fixed to the skull, the lower riding on the jaw) and a tongue.
"""

from __future__ import annotations

import math
from importlib import resources

import numpy as np
import torch

from headsplat.core.rotation import axis_angle_to_matrix
from headsplat.core.validate import check_shape
from headsplat.face import indices as ix
from headsplat.rig.base import RigOutput
from headsplat.rig.expressions import (
    EXPRESSION_NAMES,
    GAZE_SHIFT,
    JAW_ANGLE,
    JAW_PIVOT,
    blink_targets,
    build_expression_basis,
    lid_operators,
    rot_x,
)
from headsplat.rig.mesh_ops import boundary_loops
from headsplat.rig.shell import ShellConfig, build_shell

N_FACE = 478
VERSION = 2  # of the open rig's topology and expression set (1: 14 expressions, eye fans, no teeth)

# Lip shapes that overlap the jaw and the smile (the tracker's prior on them is stronger).
SECONDARY_MOUTH = ("mouth_wide", "pucker", "frown_left", "frown_right", "upper_lip_up", "lower_lip_down",
                   "lips_press", "lips_funnel", "mouth_sideways", "jaw_sideways")

# Mouth materials (``OpenRig.mouth_material``): what an avatar's generic mouth interior looks like.
CAVITY, TEETH, TONGUE, GUMS = 0, 1, 2, 3


def load_face_template() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The bundled neutral face: vertices (478, 3) metres, triangles (852, 3), mirror (478,) partner indices."""
    with resources.files("headsplat.rig").joinpath("data/mediapipe_face.npz").open("rb") as f:
        d = np.load(f)
        return d["vertices"].astype(np.float64), d["triangles"].astype(np.int64), d["mirror"].astype(np.int64)


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


def _facing_plus_z(verts: np.ndarray, tris: np.ndarray, first: int) -> np.ndarray:
    """``tris`` (global indices of ``verts``, which start at ``first``) wound so that they face +z."""
    a, b, c = (verts[tris[:, i] - first] for i in range(3))
    return tris[:, [0, 2, 1]] if np.cross(b - a, c - a)[:, 2].mean() < 0 else tris


def build_eyeball(v: np.ndarray, loop: np.ndarray, first: int, grow: tuple = (1.35, 1.9), depth: float = 0.004
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A cap behind one eye's lid opening: a rim (the opening's loop grown about its centre, ``grow`` × in x
    and y, pushed ``depth`` metres back), an inner ring halfway to the centre and a centre vertex half as deep,
    so that the cap bulges like an eyeball and its triangles are small (Gaussians bound to them stay near it).

    Args:
        v: (478, 3) face template. loop: (L,) the eye's lid-margin loop. first: index of the first new vertex.

    Returns:
        vertices (2L + 1, 3): rim, inner ring, centre (last); triangles (3L, 3) facing +z, global indices;
        follow (2L + 1, 478): the loop vertex (or, for the centre, the loop's mean) whose identity offset each
        new vertex takes.
    """
    n = len(loop)
    c = v[loop].mean(0)
    rim = c + (v[loop] - c) * np.array([grow[0], grow[1], 1.0]) + np.array([0.0, 0.0, -depth])
    centre = c + np.array([0.0, 0.0, -0.5 * depth])
    inner = 0.5 * (rim + centre) + np.array([0.0, 0.0, 0.1 * depth])
    verts = np.concatenate([rim, inner, centre[None]])
    i = np.arange(n)
    r, q, ctr = first + i, first + n + i, first + 2 * n
    r2, q2 = first + (i + 1) % n, first + n + (i + 1) % n
    tris = _facing_plus_z(verts, np.concatenate([np.stack([r, r2, q], 1), np.stack([r2, q2, q], 1),
                                                 np.stack([q, q2, np.full(n, ctr)], 1)]), first)
    follow = np.zeros((2 * n + 1, v.shape[0]))
    follow[i, loop] = 1.0
    follow[n + i, loop] = 1.0
    follow[2 * n, loop] = 1.0 / n
    return verts, tris.astype(np.int64), follow


def build_teeth(v: np.ndarray, first: int, columns: int = 14, inset: float = 0.004
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Two rows of teeth behind the lips: curved strips following the lip contour ``inset`` metres behind it,
    spanning 80 % of the mouth's width, meeting at the line through the mouth corners. The upper row reaches
    up behind the upper lip, the lower down behind the lower lip.

    Args:
        v: (478, 3) face template. first: index of the first new vertex.

    Returns:
        vertices (4 * columns, 3): upper row's top then bottom edge, lower row's top then bottom edge;
        triangles (4 * (columns - 1), 3) facing +z; follow (4 * columns, 478) identity weights (each vertex
        takes the offset of its nearest inner-lip vertex); upper (triangles,) bool; lower_vertex (vertices,)
        bool: on the lower row (rides on the jaw).
    """
    r, l = v[ix.MOUTH_CORNERS[0]], v[ix.MOUTH_CORNERS[1]]
    up = v[ix.LIPS_INNER_UPPER[1:-1]]
    lo = v[ix.LIPS_INNER_LOWER[1:-1]]
    xs = np.linspace(r[0], l[0], columns) * 0.8
    # the lips' depth and height along x (interpolated over the inner lip points, sorted by x)
    def along(pts, k):
        o = np.argsort(pts[:, 0])
        return np.interp(xs, pts[o, 0], pts[o, k])
    z_lip = 0.5 * (along(up, 2) + along(lo, 2))
    mid_y = np.interp(xs, [r[0], l[0]], [r[1], l[1]])
    z = z_lip - inset - 0.6 * inset * (xs / max(abs(r[0]), 1e-6)) ** 2  # rows curve back towards the corners
    top_y = np.maximum(along(up, 1), mid_y) + 0.003
    bottom_y = np.minimum(along(lo, 1), mid_y) - 0.004
    rows = [np.stack([xs, top_y, z], 1), np.stack([xs, mid_y + 0.0004, z], 1),
            np.stack([xs, mid_y - 0.0004, z - 0.0006], 1), np.stack([xs, bottom_y, z - 0.0006], 1)]
    verts = np.concatenate(rows)
    tris = []
    for a, b in ((0, 1), (2, 3)):  # each row: a strip between its two edges
        ia, ib = first + a * columns + np.arange(columns), first + b * columns + np.arange(columns)
        tris.append(np.stack([ia[:-1], ib[:-1], ia[1:]], 1))
        tris.append(np.stack([ia[1:], ib[:-1], ib[1:]], 1))
    tris = _facing_plus_z(verts, np.concatenate(tris).astype(np.int64), first)
    upper = np.concatenate([np.ones(2 * (columns - 1), bool), np.zeros(2 * (columns - 1), bool)])
    inner = np.unique(np.concatenate([ix.LIPS_INNER_UPPER, ix.LIPS_INNER_LOWER]))
    nearest = inner[np.argmin(np.linalg.norm(verts[:, None, :2] - v[None, inner, :2], axis=-1), 1)]
    follow = np.zeros((len(verts), v.shape[0]))
    follow[np.arange(len(verts)), nearest] = 1.0
    lower_vertex = np.arange(len(verts)) >= 2 * columns
    return verts, tris, follow, upper, lower_vertex


class OpenRig(torch.nn.Module):
    """The open head rig. Buffers only; per-subject parameters are passed to :meth:`forward`.

    Attributes:
        triangles: (F, 3) int64: the face's, the eye fans', then the shell's (``n_face_triangles`` face+eyes).
        mouth_triangles: (M, 3) int64: a cavity behind the lips (an inner ring that follows the lips and a
            back wall), not part of ``triangles``: avatars bind a mouth interior to it; tracking ignores it.
        mouth_upper: (M,) bool: the mouth triangle belongs to the upper half (upper teeth) rather than the
            lower (lower teeth, which follow the jaw).
        mouth_material: (M,) int64: CAVITY, TEETH, TONGUE or GUMS (the band from the lips to the cavity).
        template: (V, 3) neutral vertices in metres.
        spread: (V, 478) how each vertex follows face-vertex identity offsets (identity rows for face
            vertices, fading weights from the outline for the shell, the lip or lid vertex for the mouth and
            eyes).
        expression_spread: (V, 478) how each vertex follows face-vertex expression displacements (as
            ``spread``, but eyeballs and teeth do not follow the face).
        basis: (E, 478, 3) expression displacements of the face vertices.
        own_basis: (E, V, 3) expression displacements of vertices moved by a coefficient directly (the
            lower teeth by the jaw).
        eyeball_centres: (2,) the vertex at the centre of each eyeball cap.
        surface_bound: (F + M,) bool: avatar triangles (``triangles`` then ``mouth_triangles``) whose Gaussians
            must stay on the surface: the eyeballs, the teeth and gums, and the face triangles within two rings
            of the eye openings and four of the mouth's.
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
        self.face_mesh_triangles = tris  # the face mesh alone (852, 3): what the tracker's identity prior uses
        # Eyeballs behind the eye holes (the two 16-vertex loops): lids close over them.
        first = N_FACE + n_shell
        extra_v, eye_t, follow_rows, still_rows = [], [], [], []
        eyeball_centres = []
        for lp in (lp for lp in loops[1:] if len(lp) == 16):
            ev, et, ef = build_eyeball(v, lp, first)
            eyeball_centres.append(first + len(ev) - 1)
            extra_v.append(ev), eye_t.append(et), follow_rows.append(ef), still_rows.append(np.ones(len(ev), bool))
            first += len(ev)
        tris = np.concatenate([tris] + eye_t)
        self.n_face_triangles = len(tris)
        n_eye_t = sum(len(t) for t in eye_t)
        # The mouth hole (the 20-vertex loop): a cavity behind it and two rows of teeth, for avatars only.
        mouth_loop = next(lp for lp in loops[1:] if len(lp) == 20)
        cav_v, cav_t, cav_follow, cav_upper = build_mouth_cavity(v, mouth_loop, first)
        extra_v.append(cav_v), follow_rows.append(cav_follow), still_rows.append(np.zeros(len(cav_v), bool))
        first += len(cav_v)
        teeth_v, teeth_t, teeth_follow, teeth_upper, lower_teeth = build_teeth(v, first)
        extra_v.append(teeth_v), follow_rows.append(teeth_follow), still_rows.append(np.ones(len(teeth_v), bool))
        mouth_t = np.concatenate([cav_t, teeth_t])
        mouth_upper = np.concatenate([cav_upper, teeth_upper])
        # Tongue: the cavity's lower half beyond the lips' ring; teeth: the two rows.
        material = np.full(len(mouth_t), CAVITY, np.int64)
        n_ring = len(mouth_loop)
        deep_lower = (~cav_upper) & (np.arange(len(cav_t)) >= 2 * n_ring) & (np.arange(len(cav_t)) < 4 * n_ring)
        material[: len(cav_t)][deep_lower] = TONGUE
        material[: 2 * n_ring] = GUMS  # the band from the lips back to the cavity's first ring
        material[len(cav_t):] = TEETH
        follow = np.concatenate(follow_rows).astype(np.float32)
        still = np.concatenate(still_rows)
        spread = np.concatenate([spread, follow])
        expression_spread = spread.copy()
        expression_spread[N_FACE + n_shell:][still] = 0.0
        shell_v = np.concatenate([shell_v] + extra_v)
        # The lower teeth ride on the jaw: the jaw basis' rotation (and sideways shift) at full weight.
        teeth_idx = N_FACE + len(shell_v) - len(teeth_v) + np.flatnonzero(lower_teeth)
        own = np.zeros((len(EXPRESSION_NAMES), N_FACE + len(shell_v), 3), np.float32)
        rest = teeth_v[lower_teeth]
        own[EXPRESSION_NAMES.index("jaw_open"), teeth_idx] = (rest - JAW_PIVOT) @ rot_x(JAW_ANGLE).T + JAW_PIVOT - rest
        k = EXPRESSION_NAMES.index("jaw_sideways")
        own[k, teeth_idx] = basis[k, ix.CHIN]
        # The eyeballs slide with the gaze (their rims, wider than the openings, stay hidden behind the lids).
        eyeballs = np.arange(N_FACE + n_shell, N_FACE + n_shell + sum(len(e) for e in extra_v[:2]))
        for name, axis in (("gaze_yaw", 0), ("gaze_pitch", 1)):
            own[EXPRESSION_NAMES.index(name), eyeballs, axis] = GAZE_SHIFT[axis]
        self.outline = outline
        self.register_buffer("template", torch.from_numpy(np.concatenate([v, shell_v]).astype(np.float32)))
        self.register_buffer("triangles", torch.from_numpy(np.concatenate([tris, shell_t]).astype(np.int64)))
        self.register_buffer("spread", torch.from_numpy(spread))
        self.register_buffer("expression_spread", torch.from_numpy(expression_spread))
        self.register_buffer("basis", torch.from_numpy(basis))
        self.register_buffer("own_basis", torch.from_numpy(own))
        # Blinks close each eye's lids whatever their opening (this face's, after the other expressions):
        # the lid margins move by a share of their current gap, spread over the face by a fixed operator.
        linear = torch.ones(len(EXPRESSION_NAMES))
        self._lids = []
        for side, (op, lid_upper, lid_lower) in lid_operators(v, self.face_mesh_triangles, outline).items():
            k = EXPRESSION_NAMES.index(f"blink_{side}")
            linear[k] = 0.0
            self.register_buffer(f"lid_operator_{side}", torch.from_numpy(op.astype(np.float32)))
            self._lids.append((k, side, torch.from_numpy(lid_upper), torch.from_numpy(lid_lower)))
        self.register_buffer("linear_expressions", linear)
        self.register_buffer("mirror", torch.from_numpy(mirror))
        self.register_buffer("mouth_triangles", torch.from_numpy(mouth_t))
        self.register_buffer("mouth_upper", torch.from_numpy(mouth_upper))
        self.register_buffer("mouth_material", torch.from_numpy(material))
        self.register_buffer("eyeball_centres", torch.tensor(eyeball_centres, dtype=torch.int64))
        # Surfaces whose Gaussians must stay on them (an eyeball's would float out through the closed lids, a
        # tooth's out of the row), as avatar triangles (head, then mouth): the eyeballs, the teeth and gums...
        flat = np.zeros(len(tris) + len(shell_t) + len(mouth_t), bool)
        flat[self.n_face_triangles - n_eye_t: self.n_face_triangles] = True
        # ... and the rims of the eye and mouth openings: left free, their Gaussians drift over the opening
        # to paint the iris or the teeth of the photo, and smear when the lids close or the jaw opens.
        fm = self.face_mesh_triangles

        def grow(vertices, rings):  # the vertices within ``rings`` edges of ``vertices``
            for _ in range(rings):
                vertices = np.unique(fm[np.isin(fm, vertices).any(1)])
            return vertices
        eyes_near = grow(np.concatenate([lp for lp in loops[1:] if len(lp) == 16]), 1)
        lips_near = grow(mouth_loop, 3)  # the lips' red and the corners' folds, which stretch as the jaw opens
        flat[: len(fm)] = np.isin(fm, np.concatenate([eyes_near, lips_near])).any(1)
        # The eyes' dense layers (avatars): the eyeballs paint the iris and the whites seen through the opening;
        # the rims (lid skin next to it) keep small Gaussians inside their triangles, so that they do not carry
        # the iris down over a closing eye.
        eye_rims = np.zeros_like(flat)
        eye_rims[: len(fm)] = np.isin(fm, eyes_near).any(1)
        eyeballs = np.zeros_like(flat)
        eyeballs[self.n_face_triangles - n_eye_t: self.n_face_triangles] = True
        self.register_buffer("eye_rims", torch.from_numpy(eye_rims))
        self.register_buffer("eyeball_triangles", torch.from_numpy(eyeballs))
        flat[len(tris) + len(shell_t):][(material == TEETH) | (material == GUMS)] = True
        self.register_buffer("surface_bound", torch.from_numpy(flat))

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
        """MediaPipe landmarks the tracker fits: all 478 (the 468 mesh points, and the 10 iris points, which
        move with the gaze)."""
        return np.arange(N_FACE)

    def expression_prior_weights(self) -> torch.Tensor:
        """(E,) relative weights of the tracker's magnitude prior on each expression coefficient: the lip shapes
        that overlap the jaw and the smile (a lower lip that drops, lips that press or funnel, ...) cost five
        times more, so that an opening mouth is read as the jaw, consistently from frame to frame; squints
        four times more (lower lids move less than upper ones: a closing eye is read as a blink)."""
        w = torch.ones(self.n_expressions)
        for i, name in enumerate(self.expression_names):
            if name in SECONDARY_MOUTH:
                w[i] = 5.0
            elif name.startswith("squint_"):
                w[i] = 4.0
        return w

    def expression_lower_bounds(self) -> torch.Tensor:
        """(E,) lower bounds of the expression coefficients the tracker fits: 0 for the lid and brow shapes
        (blinks, wide eyes, squints, brows up, down and inner up), which unbounded trade off against each other
        and drift (a closing lid read as less "wide"); none for the mouth, whose shapes overlap the jaw by design
        (bounded, an opening jaw on rendered avatars is read partly as lip shapes), and the gaze."""
        one_sided = ("blink_", "wide_", "squint_", "brow_")
        return torch.tensor([0.0 if n.startswith(one_sided) else -math.inf for n in self.expression_names])

    def expression_smoothing_weights(self) -> torch.Tensor:
        """(E,) relative weights of the tracker's temporal smoothing of each coefficient: lids (blinks, wide
        eyes, squints) and the gaze move in a few frames and are smoothed a tenth as much."""
        w = torch.ones(self.n_expressions)
        for i, name in enumerate(self.expression_names):
            if name.startswith(("blink_", "wide_", "squint_", "gaze_")):
                w[i] = 0.1
        return w

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

    def expression_fields(self, identity: torch.Tensor, scale: torch.Tensor, expression: torch.Tensor
                          ) -> torch.Tensor:
        """(..., E, 478, 3) how the face vertices move per unit of each expression coefficient, in the template's
        units (like ``offsets``), at a frame's coefficients (..., E): the stored field of the linear shapes and,
        for the blinks, their field at this face's lid gap (which the linear shapes set; the blinks move the face
        linearly in their own coefficients). The face's displacement is their sum weighted by ``expression``."""
        neutral = self.neutral(identity, scale, face_only=True)
        s = scale[..., None, None]
        lin = self.linear_expressions
        face = neutral + torch.einsum("...e,evc->...vc", expression * lin, self.basis[:, :N_FACE]) * s
        fields = (self.basis[:, :N_FACE] * lin[:, None, None]).expand(*face.shape[:-2], -1, -1, -1).clone()
        for k, side, upper, lower in self._lids:
            lid = getattr(self, f"lid_operator_{side}") @ blink_targets(face[..., upper, :], face[..., lower, :])
            fields[..., k, :, :] = lid / s
        return fields

    def forward(self, identity: torch.Tensor, scale: torch.Tensor, expression: torch.Tensor,
                rotation: torch.Tensor, translation: torch.Tensor, face_only: bool = False,
                offsets: torch.Tensor | None = None) -> RigOutput:
        """Pose the rig.

        Args:
            identity: (..., 478, 3) identity offsets (broadcast against the frame dims).
            scale: (...) identity scale.
            expression: (..., E) expression coefficients (0 is neutral).
            rotation: (..., 3) head rotation, axis-angle, applied about the head-space origin.
            translation: (..., 3) head position in world space, metres.
            face_only: only the 478 face vertices.
            offsets: (..., 478, 3) free displacements of the face vertices beyond the named shapes (a tracked
                performance's :attr:`~headsplat.track.tracking.Tracking.offsets`), in the template's units
                (scaled by ``scale`` like the shapes), added after the shapes and blinks; spread onto the
                shell and the mouth like the shapes' displacements.

        Returns:
            :class:`RigOutput` with (..., V, 3) tensors.
        """
        check_shape("expression", expression, ("...", self.n_expressions))
        if offsets is not None:
            check_shape("offsets", offsets, ("...", N_FACE, 3))
        check_shape("rotation", rotation, ("...", 3))
        check_shape("translation", translation, ("...", 3))
        # 1. identity: the neutral shape
        neutral = self.neutral(identity, scale, face_only)
        # 2. expression: displacements of the face (linear, then the blinks relative to the lids' gap), spread
        #    onto the shell, plus what moves on its own (the lower teeth with the jaw)
        s = scale[..., None, None]
        disp = torch.einsum("...e,evc->...vc", expression * self.linear_expressions, self.basis) * s
        face = neutral[..., :N_FACE, :] + disp
        for k, side, upper, lower in self._lids:
            lid = getattr(self, f"lid_operator_{side}") @ blink_targets(face[..., upper, :], face[..., lower, :])
            disp = disp + expression[..., k, None, None] * lid
        if offsets is not None:
            disp = disp + offsets * s
        if face_only:
            shaped = neutral + disp
        else:
            shaped = neutral + self.expression_spread @ disp + torch.einsum("...e,evc->...vc", expression,
                                                                              self.own_basis) * s
        # 3. pose: rigid transform about the head-space origin
        rot = axis_angle_to_matrix(rotation)
        posed = shaped @ rot.transpose(-1, -2) + translation[..., None, :]
        return RigOutput(posed, neutral)


def explained_modes(rig: OpenRig, shapes: bool = True, n_vertices: int = 468) -> np.ndarray:
    """(n_vertices * 3, K) orthonormal basis of the deformations of the first ``n_vertices`` face vertices that
    other parameters explain: the rigid motions (translations, infinitesimal rotations about the head-space
    origin), the uniform scaling and (``shapes``) the expression basis' displacement fields (``rig.basis``; for
    the blinks, which act relative to the lids' gap, their stored linear field), vertex-major (x, y, z of
    vertex 0 first). What per-vertex identity or expression offsets must leave to those parameters."""
    v = rig.template[:n_vertices].double()
    cols = [b[:n_vertices].reshape(-1) for b in rig.basis.double()] if shapes else []
    for axis in torch.eye(3, dtype=torch.float64):
        cols.append(axis.expand(n_vertices, 3).reshape(-1))
        cols.append(torch.linalg.cross(axis.expand(n_vertices, 3), v).reshape(-1))
    cols.append(v.reshape(-1))
    q, _ = torch.linalg.qr(torch.stack(cols, 1))
    return q.numpy()
