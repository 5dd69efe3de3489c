"""Build headsplat/rig/data/mediapipe_face.npz: the face-mesh triangles and a neutral face template.

MediaPipe ships its face-mesh topology as an edge list and no 3D model inside the wheel, so this script
recovers the triangles from the edges and builds a symmetric neutral face in metres from the landmarks that
the bundled model predicts on real portraits given on the command line (the repository's file was made from
skimage's astronaut and the insightface sample images). Run it again to regenerate the file:

    python tools/build_face_template.py IMAGE [IMAGE ...]
"""

from __future__ import annotations

import argparse
import itertools
from collections import Counter
from pathlib import Path

import numpy as np

from headsplat.face import LandmarkDetector
from headsplat.face.indices import CHIN, FOREHEAD, NOSE_TIP, eye_centres
from headsplat.media.image import read_image_uint8

OUT = Path(__file__).resolve().parents[1] / "headsplat" / "rig" / "data" / "mediapipe_face.npz"
EYE_DISTANCE_M = 0.064  # adult mean distance between eye centres (corner midpoints), metres


def triangles_from_edges(edges) -> np.ndarray:
    """Faces of the triangulation given by its edges: 3-cliques minus separating triangles."""
    es = {tuple(sorted(e)) for e in edges}
    adj: dict[int, set] = {}
    for a, b in es:
        adj.setdefault(a, set()).add(b)
        adj.setdefault(b, set()).add(a)
    tris = {tuple(sorted((a, b, c))) for a, b in es for c in adj[a] & adj[b]}
    use = Counter(e for t in tris for e in itertools.combinations(t, 2))
    # A separating triangle's three edges are each shared by three cliques: drop it.
    tris = [t for t in tris if not all(use[e] > 2 for e in itertools.combinations(t, 2))]
    use = Counter(e for t in tris for e in itertools.combinations(t, 2))
    if max(use.values()) > 2:
        raise RuntimeError("face-mesh edges do not form a manifold triangulation")
    return np.array(sorted(tris), dtype=np.int64)


def orient(tris: np.ndarray, verts: np.ndarray) -> np.ndarray:
    """Consistent winding by propagation, then flipped so normals point along +z (out of the face)."""
    tris = tris.copy()
    edge_owner: dict[tuple, list] = {}
    for i, t in enumerate(tris):
        for a, b in ((t[0], t[1]), (t[1], t[2]), (t[2], t[0])):
            edge_owner.setdefault(tuple(sorted((a, b))), []).append(i)
    done = np.zeros(len(tris), bool)
    for start in range(len(tris)):
        if done[start]:
            continue
        done[start] = True
        stack = [start]
        while stack:
            i = stack.pop()
            t = tris[i]
            for a, b in ((t[0], t[1]), (t[1], t[2]), (t[2], t[0])):
                for j in edge_owner[tuple(sorted((a, b)))]:
                    if done[j]:
                        continue
                    u = tris[j]
                    directed = {(u[0], u[1]), (u[1], u[2]), (u[2], u[0])}
                    if (a, b) in directed:  # same direction as the neighbour: flip
                        tris[j] = u[[0, 2, 1]]
                    done[j] = True
                    stack.append(j)
    n = np.cross(verts[tris[:, 1]] - verts[tris[:, 0]], verts[tris[:, 2]] - verts[tris[:, 0]])
    if n[:, 2].sum() < 0:
        tris = tris[:, [0, 2, 1]]
    return tris


def mirror_map(v: np.ndarray) -> np.ndarray:
    """Index of each vertex's mirror partner across x = 0: the assignment of mirrored points to points with
    the least total squared distance (a permutation, unlike nearest neighbours)."""
    from scipy.optimize import linear_sum_assignment

    m = v.copy()
    m[:, 0] *= -1
    d = ((m[:, None] - v[None]) ** 2).sum(-1)
    d = d + d.T  # symmetric cost favours an involution
    return linear_sum_assignment(d)[1]


def to_head_space(p: np.ndarray) -> np.ndarray:
    """MediaPipe pixels (x right, y down, z into the image) -> head space (x, +y up, +z out), unit eyes."""
    v = np.stack([p[:, 0], -p[:, 1], -p[:, 2]], 1).astype(np.float64)
    r, l = eye_centres(v)
    return (v - (r + l) / 2) / np.linalg.norm(l - r)


def frontalise(v: np.ndarray, mirror: np.ndarray | None) -> np.ndarray:
    """Rotate so the face is symmetric about x = 0 and looks along +z."""
    r, l = eye_centres(v)
    x = l - r
    x /= np.linalg.norm(x)
    up = v[FOREHEAD] - v[CHIN]
    y = up - x * (up @ x)
    y /= np.linalg.norm(y)
    z = np.cross(x, y)
    v = v @ np.stack([x, y, z], 1)
    if mirror is not None:  # refine with a Procrustes fit between the face and its mirror image
        m = v[mirror] * np.array([-1, 1, 1])
        u, _, vt = np.linalg.svd(m.T @ v)
        rot = u @ vt
        # the half rotation takes v to its symmetric pose
        from scipy.spatial.transform import Rotation

        half = Rotation.from_matrix(rot).as_rotvec() / 2
        v = v @ Rotation.from_rotvec(half).as_matrix().T
    return v


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("images", nargs="*", help="portrait images (default: skimage's astronaut)")
    args = ap.parse_args()
    from mediapipe.python.solutions.face_mesh_connections import FACEMESH_TESSELATION

    images = [read_image_uint8(p) for p in args.images]
    if not images:
        from skimage import data
        images = [data.astronaut()]
    shapes = []
    with LandmarkDetector("image") as det:
        for img in images:
            for f in det.detect_all(img):
                shapes.append(to_head_space(f.points))
    print(f"{len(shapes)} faces")
    mirror = None
    for _ in range(2):
        aligned = [frontalise(s, mirror) for s in shapes]
        mean = np.mean(aligned, 0)
        mirror = mirror_map(mean[:468])
        mirror = np.concatenate([mirror, np.array([473, 474, 476, 475, 477, 468, 469, 471, 470, 472])])
    sym = (mean + mean[mirror] * np.array([-1, 1, 1])) / 2
    invol = (mirror[mirror] == np.arange(len(mirror))).mean()
    print(f"mirror map is an involution for {invol:.3f} of vertices")
    r, l = eye_centres(sym)
    sym = sym * EYE_DISTANCE_M / np.linalg.norm(l - r)
    # Origin near the head's centre: on the midline, 2 cm below the eyes, 10 cm behind the nose tip.
    eyes_y = (r[1] + l[1]) / 2 * EYE_DISTANCE_M / np.linalg.norm(l - r)
    sym -= np.array([0.0, eyes_y - 0.02, sym[NOSE_TIP, 2] - 0.10])
    tris = orient(triangles_from_edges(FACEMESH_TESSELATION), sym)
    np.savez_compressed(OUT, vertices=sym.astype(np.float32), triangles=tris.astype(np.int32),
                        mirror=mirror.astype(np.int32), n_sources=np.int32(len(shapes)))
    print(f"wrote {OUT}: {len(sym)} vertices, {len(tris)} triangles")


if __name__ == "__main__":
    main()
