"""Small mesh utilities on numpy arrays: boundary loops, graph Laplacians, harmonic interpolation."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla


def boundary_loops(triangles: np.ndarray) -> list[np.ndarray]:
    """Ordered vertex loops of the mesh boundary, longest first. triangles: (F, 3)."""
    directed = set()
    for t in triangles:
        for a, b in ((t[0], t[1]), (t[1], t[2]), (t[2], t[0])):
            directed.add((int(a), int(b)))
    nxt = {a: b for a, b in directed if (b, a) not in directed}
    loops, seen = [], set()
    for start in nxt:
        if start in seen:
            continue
        loop, v = [], start
        while v not in seen:
            seen.add(v)
            loop.append(v)
            v = nxt[v]
        loops.append(np.array(loop))
    return sorted(loops, key=len, reverse=True)


def graph_laplacian(triangles: np.ndarray, n: int) -> sp.csr_matrix:
    """(n, n) uniform graph Laplacian L = D - A of the mesh edges (vertices outside triangles are isolated)."""
    i = np.concatenate([triangles[:, 0], triangles[:, 1], triangles[:, 2]])
    j = np.concatenate([triangles[:, 1], triangles[:, 2], triangles[:, 0]])
    a = sp.coo_matrix((np.ones(len(i)), (i, j)), shape=(n, n)).tocsr()
    a = ((a + a.T) > 0).astype(np.float64)
    return (sp.diags(np.asarray(a.sum(1)).ravel()) - a).tocsr()


def harmonic(lap: sp.csr_matrix, fixed: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Solve L x = 0 on free vertices with x[fixed] = values (Dirichlet), smooth interpolation on the mesh.

    Args:
        lap: (n, n) Laplacian.
        fixed: (k,) indices with known values.
        values: (k, D) known values.

    Returns:
        (n, D) values; vertices unreachable from any fixed vertex get 0.
    """
    n = lap.shape[0]
    values = values.reshape(len(fixed), -1)
    free = np.setdiff1d(np.arange(n), fixed)
    out = np.zeros((n, values.shape[1]))
    out[fixed] = values
    deg = lap.diagonal()
    free = free[deg[free] > 0]
    a = lap[free][:, free].tocsc()
    b = -lap[free][:, fixed] @ values
    out[free] = spla.spsolve(a, b).reshape(len(free), -1)
    return out
