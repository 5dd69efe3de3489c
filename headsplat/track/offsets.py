"""Free face deformation beyond the open rig's named shapes: per-vertex offsets fitted to a video.

The rig's 25 shapes cannot reproduce everything a face does (a lip raised on one side, a brow knitted
unevenly, a pucker pushed sideways). After the tracker's pose and shape fit, what the frames still show (measured
by optical flow: :mod:`headsplat.track.photometric`) is fitted as per-frame displacements of the 468 face-mesh
vertices (the irises move with the gaze shapes), in the template's units (the rig scales them with the identity):

- each frame: a linear least-squares problem on the tracker's linearised projection, a vertex's weight falling
  with its residual (pseudo-Huber, two reweightings), a Laplacian prior (neighbouring vertices move together), a
  small magnitude prior, and a stronger one along each vertex's line of sight (which the frame does not show;
  it also lets conjugate gradients converge in a few dozen steps);
- rigid motion and uniform scaling of the face are projected out (they belong to the head pose; offsets that
  carried them would tear the face from the shell);
- in time: a second-difference smoother within each shot (a cut is not motion), frames without a face
  weighted 0 (they are interpolated).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from scipy.linalg import solve_banded
from scipy.optimize import lsq_linear
from scipy.sparse.linalg import LinearOperator, cg, splu

from headsplat.core.camera import world_to_opencv
from headsplat.core.chunks import chunks
from headsplat.core.rotation import axis_angle_to_matrix
from headsplat.face.indices import interocular
from headsplat.rig.mesh_ops import graph_laplacian
from headsplat.rig.open_rig import OpenRig, explained_modes

N_MESH = 468  # MediaPipe's mesh vertices (then 10 iris points)
FLIP = world_to_opencv().diagonal()[:3].double().numpy()  # (3,) world (y up, z to viewer) -> OpenCV camera axes


@dataclass(frozen=True)
class OffsetConfig:
    """Settings of the free offsets (unit: the template's inter-ocular distance for offsets, the frame's
    inter-ocular distance for the measured residuals)."""

    laplacian: float = 0.02  # spatial smoothness (uniform graph Laplacian)
    size: float = 0.002  # magnitude
    depth: float = 0.05  # magnitude along each vertex's line of sight (which the frame does not show)
    temporal: float = 2.0  # second differences in time (frames)
    robust: float = 0.03  # pseudo-Huber scale of a vertex's residual
    reweightings: int = 2
    passes: int = 2  # passes over the video, each measuring what the previous ones left


def projection_jacobians(points: np.ndarray, rotation: np.ndarray, focal: float) -> np.ndarray:
    """(T, P, 2, 3) derivative of the pixel position of posed points with respect to a head-space displacement.

    Args:
        points: (T, P, 3) posed points, world space (metres). rotation: (T, 3, 3) head rotations. focal: pixels.
    """
    c = points * FLIP
    z = c[..., 2]
    d = np.zeros(points.shape[:-1] + (2, 3))
    d[..., 0, 0] = focal / z
    d[..., 1, 1] = focal / z
    d[..., 0, 2] = -focal * c[..., 0] / z ** 2
    d[..., 1, 2] = -focal * c[..., 1] / z ** 2
    return d @ (FLIP[:, None] * rotation)[:, None]


def _second_difference_smoother(n: int, lam: float, weight: np.ndarray) -> np.ndarray:
    """Banded form (5, n) of diag(weight) + lam * D2^T D2 for ``scipy.linalg.solve_banded((2, 2), ...)``."""
    k = np.arange(n - 2)
    main, off1, off2 = weight.astype(np.float64).copy(), np.zeros(n - 1), np.zeros(n - 2)
    for shift, c in ((0, 1.0), (1, 4.0), (2, 1.0)):  # each row of D2 is (1, -2, 1) at columns k, k+1, k+2
        np.add.at(main, k + shift, lam * c)
    np.add.at(off1, k, -2 * lam)
    np.add.at(off1, k + 1, -2 * lam)
    off2 += lam
    ab = np.zeros((5, n))
    ab[0, 2:], ab[1, 1:], ab[2], ab[3, :-1], ab[4, :-2] = off2, off1, main, off1, off2
    return ab


def smooth_in_time(x: np.ndarray, found: np.ndarray, shots: np.ndarray, lam: float) -> np.ndarray:
    """(T, D) per-frame estimates smoothed within each shot: argmin sum_t found_t |y_t - x_t|^2 +
    lam |y_{t+1} - 2 y_t + y_{t-1}|^2 (frames without a face are filled in)."""
    out = x.copy()
    for s in np.unique(shots):
        idx = np.flatnonzero(shots == s)
        w = found[idx].astype(np.float64)
        if len(idx) < 3 or lam <= 0 or w.sum() < 2:
            continue
        ab = _second_difference_smoother(len(idx), lam, w)
        for c in chunks(x.shape[1]):  # the columns are independent: their working copies stay a block's
            out[idx, c] = solve_banded((2, 2), ab, w[:, None] * x[idx, c])
    return out


def _solve(a: sp.csr_matrix, b: np.ndarray, blocks: np.ndarray, start: np.ndarray | None) -> np.ndarray:
    """Solve the symmetric positive definite ``a x = b`` by conjugate gradients with a block-Jacobi (3x3 per
    vertex, ``blocks`` (468, 3, 3)) preconditioner, from ``start`` (the previous frame's solution): ~10 times
    faster than a sparse LU here, to 1e-6 relative accuracy."""
    inv = np.linalg.inv(blocks)
    m = LinearOperator(a.shape, matvec=lambda x: np.einsum("pij,pj->pi", inv, x.reshape(-1, 3)).ravel(),
                       dtype=np.float64)
    x, info = cg(a, b, x0=start, rtol=1e-6, maxiter=5000, M=m)
    if info != 0:  # not converged (never seen): the direct solver
        x = splu(a.tocsc()).solve(b)
    return x


def fit_offsets(points: np.ndarray, rotation: np.ndarray, focal: float, residuals: np.ndarray,
                weights: np.ndarray, found: np.ndarray, iod: np.ndarray, scale: float, rig: OpenRig, shots: np.ndarray,
                cfg: OffsetConfig = OffsetConfig()) -> np.ndarray:
    """Per-frame face offsets that move the fitted rig's face vertices by the measured residuals.

    Args:
        points: (T, 478, 3) the fitted rig's posed face vertices (world space, metres).
        rotation: (T, 3, 3) the fitted head rotations.
        focal: focal length in pixels.
        residuals: (T, 478, 2) where each vertex is seen minus where the rig puts it, pixels
            (:func:`~headsplat.track.photometric.face_flow_residuals`).
        weights: (T, 478) each residual's weight (0: not seen).
        found: (T,) bool, frames with a detected face.
        iod: (T,) the face's inter-ocular distance in pixels.
        scale: the identity scale (offsets are in the template's units: displacement = scale * offset).
        rig: the open rig (its face mesh).
        shots: (T,) shot index per frame.
        cfg: settings.

    Returns:
        (T, 478, 3) float32 offsets (0 on the 10 iris points).
    """
    T = len(points)
    template = rig.template[:478].double().numpy()
    unit = float(interocular(template[None, :, :2])[0])  # offsets solved in template inter-ocular units
    lap = graph_laplacian(rig.face_mesh_triangles, N_MESH)
    prior = (cfg.laplacian * sp.kron(lap.T @ lap, sp.eye(3)) + cfg.size * sp.eye(3 * N_MESH)).tocsc()
    q = explained_modes(rig, shapes=False)

    r = residuals[:, :N_MESH] / iod[:, None, None]
    rows = (np.arange(3 * N_MESH).reshape(N_MESH, 3)[:, :, None]).repeat(3, 2)  # (468, 3, 3) row indices
    cols = rows.transpose(0, 2, 1)
    out = np.zeros((T, 478, 3))
    c2 = cfg.robust ** 2
    # the prior's 3x3 diagonal blocks (for the block-Jacobi preconditioner)
    prior_blocks = np.stack([prior[3 * i: 3 * i + 3, 3 * i: 3 * i + 3].toarray() for i in range(N_MESH)])
    prior = prior.tocsr()
    d = None
    for t in np.flatnonzero(found & (weights[:, :N_MESH].sum(1) > 0)):
        rt, seen = r[t], weights[t, :N_MESH]
        if not rt.any():
            continue
        # (468, 2, 3), a frame at a time (for the whole video it would be 22 KB a frame)
        Jt = projection_jacobians(points[t:t + 1, :N_MESH], rotation[t:t + 1], focal)[0] * (scale * unit / iod[t])
        w = seen / np.sqrt(1 + (rt ** 2).sum(-1) / c2)
        # Along each vertex's line of sight the frame sees nothing: keep the offsets out of it.
        ray = np.cross(Jt[:, 0], Jt[:, 1])
        ray /= np.linalg.norm(ray, axis=-1, keepdims=True).clip(1e-12)
        hidden = cfg.depth * ray[:, :, None] * ray[:, None, :]
        for _ in range(max(1, cfg.reweightings)):
            jtj = np.einsum("p,pki,pkj->pij", w, Jt, Jt) + hidden
            a = sp.csr_matrix((jtj.ravel(), (rows.ravel(), cols.ravel())), shape=(3 * N_MESH, 3 * N_MESH)) + prior
            b = np.einsum("p,pki,pk->pi", w, Jt, rt).ravel()
            d = _solve(a, b, jtj + prior_blocks, d)
            d -= q @ (q.T @ d)
            res = rt - np.einsum("pki,pi->pk", Jt, d.reshape(N_MESH, 3))
            w = seen / np.sqrt(1 + (res ** 2).sum(-1) / c2)
        out[t, :N_MESH] = d.reshape(N_MESH, 3) * unit
    flat = smooth_in_time(out.reshape(T, -1), found, shots, cfg.temporal)
    return flat.reshape(T, 478, 3).astype(np.float32)


#: The shapes the free offsets hand their share to (:func:`fold_into_shapes`): the blinks and the brows. The
#: landmark fit under-reads them (MediaPipe's lid points never close: a shut eye reads as about half open),
#: while the offsets, measured photometrically, see the whole motion. Not wide eyes and squints: across the
#: line of sight a blink with wide eyes moves the lids like a squint, and re-read they traded off so.
FOLDED = ("blink_", "brow_")


def fold_into_shapes(rig: OpenRig, identity: np.ndarray, scale: float, expression: np.ndarray, offsets: np.ndarray,
                     rotation: np.ndarray | None = None, prefixes: tuple[str, ...] = FOLDED, ridge: float = 1e-2
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Re-read the coefficients of named shapes from the whole face motion, offsets included, the face unchanged.

    Per frame, the coefficients of the shapes whose names start with ``prefixes`` are fitted anew (bounded
    least squares: the rig's lower bounds, 1 above; a small ``ridge`` relative to the fields' mean squared norm,
    which also keeps antagonists such as a blink and wide eyes from both acting and cancelling) to what they
    and the offsets move the face by, using the shapes' fields at the frame
    (:meth:`~headsplat.rig.open_rig.OpenRig.expression_fields`); the offsets become what the new coefficients
    leave, so that the posed face is the same. So the named controls (the viewer's sliders, a FLAME re-fit,
    retargeting a blink relative to the avatar's own lids) carry what the frames showed.

    Args:
        identity: (478, 3), scale: the tracked identity. expression: (T, E). offsets: (T, 478, 3) template units.
        rotation: (T, 3) the head rotations (axis-angle): fit only the motion across the line of sight, which
            is what the frames showed (the offsets' depth is a prior's); None: all three components.

    Returns:
        expression (T, E) float32 and offsets (T, 478, 3) float32.
    """
    # frame by frame, a chunk at a time (the expression fields are ~0.6 MB a frame)
    head = copy.deepcopy(rig).double()  # once, not per chunk
    parts = [_fold_chunk(rig, head, identity, scale, expression[f], offsets[f],
                         None if rotation is None else rotation[f], prefixes, ridge) for f in chunks(len(expression))]
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))


def _fold_chunk(rig: OpenRig, head: OpenRig, identity, scale, expression, offsets, rotation, prefixes, ridge):
    """:func:`fold_into_shapes` on some frames; ``head``: ``rig`` in float64."""
    names = list(rig.expression_names)
    ks = [i for i, n in enumerate(names) if n.startswith(prefixes)]
    idn = torch.as_tensor(identity, dtype=torch.float64)
    sc = torch.tensor(float(scale), dtype=torch.float64)
    exp = torch.as_tensor(expression, dtype=torch.float64)
    off = torch.as_tensor(offsets, dtype=torch.float64)
    zero = torch.zeros(len(exp), 3, dtype=torch.float64)
    with torch.no_grad():
        before = head(idn, sc, exp, zero, zero, face_only=True, offsets=off).vertices
        fields = head.expression_fields(idn, sc, exp)[:, ks, :N_MESH].reshape(len(exp), len(ks), -1).numpy()
    lower = rig.expression_lower_bounds().numpy()[ks]
    new = exp.numpy().copy()
    motion = np.einsum("tk,tkd->td", new[:, ks], fields) + off[:, :N_MESH].numpy().reshape(len(exp), -1)
    if rotation is not None:  # what the frame shows: the motion across the line of sight
        rot = axis_angle_to_matrix(torch.as_tensor(rotation, dtype=torch.float64)).numpy()[:, :2]  # (T, 2, 3)
        fields = np.einsum("tij,tkvj->tkvi", rot, fields.reshape(len(exp), len(ks), N_MESH, 3)).reshape(
            len(exp), len(ks), -1)
        motion = np.einsum("tij,tvj->tvi", rot, motion.reshape(len(exp), N_MESH, 3)).reshape(len(exp), -1)
    for t in range(len(exp)):
        a = fields[t].T  # (3 * 468, K), or (2 * 468, K) across the line of sight
        gram = a.T @ a
        gram += ridge * float(np.trace(gram)) / len(ks) * np.eye(len(ks))
        r = np.linalg.cholesky(gram).T  # |a c - m|^2 + ridge |c|^2 = |r c - r^-T a^T m|^2 + const
        target = np.linalg.solve(r.T, a.T @ motion[t])
        c = new[t, ks]
        lo, hi = np.minimum(lower, c), np.maximum(1.0, c)  # a coefficient already outside may stay there
        new[t, ks] = lsq_linear(r, target, bounds=(lo, hi)).x
    with torch.no_grad():
        after = head(idn, sc, torch.from_numpy(new), zero, zero, face_only=True).vertices
    folded = ((before - after) / sc).numpy()
    return new.astype(np.float32), folded.astype(np.float32)
