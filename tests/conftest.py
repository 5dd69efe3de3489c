"""Shared fixtures: real test images (skimage's astronaut, the insightface wheel's samples) and a video
rendered from a fitted rig with known parameters."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / ".test-assets" / "insightface"


@pytest.fixture(scope="session")
def insightface_dir() -> Path:
    if not (ASSETS / "Tom_Hanks_54745.png").is_file():
        pytest.fail(f"test images missing in {ASSETS}: run `make test` (it extracts them from the insightface wheel)")
    return ASSETS


@pytest.fixture(scope="session")
def astronaut_path(tmp_path_factory) -> Path:
    from PIL import Image
    from skimage import data

    p = tmp_path_factory.mktemp("img") / "astronaut.png"
    Image.fromarray(data.astronaut()).save(p)
    return p


@pytest.fixture(scope="session")
def rig():
    from headsplat.rig.open_rig import OpenRig

    return OpenRig()


@pytest.fixture(scope="session")
def posed_video(tmp_path_factory, rig):
    """A 48-frame 512x512 video of the astronaut re-posed with known controls: (path, ground truth, controls)."""
    from skimage import data

    from headsplat.api import render_posed_photo

    n = 48
    t = np.arange(n) / 25.0
    controls = {
        "head_yaw": (20 * np.sin(2 * np.pi * t / 1.92)).astype(np.float32),
        "head_pitch": (8 * np.sin(2 * np.pi * t / 0.96)).astype(np.float32),
        "head_roll": (5 * np.cos(2 * np.pi * t / 1.92)).astype(np.float32),
        "jaw_open": np.clip(np.sin(2 * np.pi * t / 0.64), 0, None).astype(np.float32) * 0.8,
        "blink_left": (np.abs(t - 1.0) < 0.12).astype(np.float32),
        "blink_right": (np.abs(t - 1.0) < 0.12).astype(np.float32),
    }
    path = tmp_path_factory.mktemp("video") / "posed.mp4"
    truth = render_posed_photo(data.astronaut(), path, controls=controls, fps=25.0, quiet=True, rig=rig)
    return path, truth, controls


@pytest.fixture(scope="session")
def astro_avatar(tmp_path_factory, astronaut_path):
    """An avatar created with the default preset from the astronaut portrait, through the public API."""
    from headsplat import api

    path = tmp_path_factory.mktemp("avatar") / "astro.avatar"
    api.create(astronaut_path, path, quiet=True)
    return path


def write_synthetic_flame(path, n_verts: int = 120, seed: int = 0, extra: dict | None = None,
                          drop: tuple = ()):
    """Write a small FLAME file in the official layout: a Python-2-style protocol-2 pickle whose
    shapedirs/posedirs are chumpy ``Ch`` objects, J_regressor a scipy csc matrix, arrays referenced through
    ``numpy.core.multiarray`` - the globals the official files carry - without chumpy or old scipy installed."""
    import pickle

    import numpy as np

    rng = np.random.default_rng(seed)

    class Ch:  # stands for chumpy.ch.Ch when writing
        _pickle_as = ("chumpy.ch", "Ch")

    class CscMatrix:  # stands for the old scipy.sparse.csc.csc_matrix
        _pickle_as = ("scipy.sparse.csc", "csc_matrix")

    def ch(x):
        obj = Ch()
        obj.__dict__.update({"x": x, "_dirty_vars": set(), "_itr": None, "_cache": {"r": None, "drs": {}}})
        return obj

    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:
        from numpy.core.multiarray import _reconstruct

    class Py2StylePickler(pickle._Pickler):
        def save_global(self, obj, name=None):
            spec = getattr(obj, "_pickle_as", None) if isinstance(obj, type) else None
            if obj is _reconstruct:
                spec = ("numpy.core.multiarray", "_reconstruct")
            if spec is None:
                return super().save_global(obj, name)
            self.write(pickle.GLOBAL + f"{spec[0]}\n{spec[1]}\n".encode("ascii"))
            self.memoize(obj)

        def save_bytes(self, obj):  # Python 2 wrote byte strings as (SHORT_)BINSTRING
            import struct

            if len(obj) < 256:
                self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
            else:
                self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
            self.memoize(obj)

        dispatch = dict(pickle._Pickler.dispatch)
        dispatch[bytes] = save_bytes

    # A lumpy sphere: rings of vertices, the lower front third is the jaw, two small clusters are the eyes.
    theta = np.arccos(rng.uniform(-1, 1, n_verts))
    phi = rng.uniform(0, 2 * np.pi, n_verts)
    v = 0.1 * np.stack([np.sin(theta) * np.cos(phi), np.cos(theta), np.sin(theta) * np.sin(phi)], 1)
    from scipy.spatial import ConvexHull

    faces = ConvexHull(v).simplices.astype(np.uint32)
    weights = np.zeros((n_verts, 5))
    weights[:, 0] = 0.2
    weights[:, 1] = 0.8
    jaw = (v[:, 1] < -0.03) & (v[:, 2] > 0)
    weights[jaw, 1], weights[jaw, 2] = 0.2, 0.6
    eyes_l = np.argsort(((v - [0.03, 0.03, 0.09]) ** 2).sum(1))[:4]
    eyes_r = np.argsort(((v - [-0.03, 0.03, 0.09]) ** 2).sum(1))[:4]
    weights[eyes_l] = [0, 0, 0, 1, 0]
    weights[eyes_r] = [0, 0, 0, 0, 1]
    reg = np.zeros((5, n_verts))
    reg[0] = 1.0 / n_verts
    reg[1, v[:, 1] < 0] = 1.0
    reg[2, jaw] = 1.0
    reg[3, eyes_l] = 1.0
    reg[4, eyes_r] = 1.0
    reg /= reg.sum(1, keepdims=True)
    import scipy.sparse as sp

    csc = sp.csc_matrix(reg)
    jr = CscMatrix()
    jr.__dict__.update({"_shape": csc.shape, "data": csc.data, "indices": csc.indices.astype(np.int32),
                        "indptr": csc.indptr.astype(np.int32), "maxprint": 50, "format": "csc"})
    model = {
        "f": faces,
        "v_template": v,
        "shapedirs": ch(rng.normal(scale=1e-3, size=(n_verts, 3, 400))),
        "posedirs": ch(rng.normal(scale=1e-4, size=(n_verts, 3, 36))),
        "J_regressor": jr,
        "kintree_table": np.array([[4294967295, 0, 1, 1, 1], [0, 1, 2, 3, 4]], dtype=np.int64),
        "weights": ch(weights),
        "J": reg @ v,
        "bs_style": "lbs",
        "bs_type": "lrotmin",
    }
    model.update(extra or {})
    for k in drop:
        model.pop(k)
    with open(path, "wb") as f:
        Py2StylePickler(f, protocol=2).dump(model)
    return path


@pytest.fixture
def synthetic_flame():
    """The writer of small official-layout FLAME files (see write_synthetic_flame)."""
    return write_synthetic_flame
