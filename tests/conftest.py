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
def posed_track(tmp_path_factory, posed_video):
    """The posed video tracked once (open rig), as `headsplat track` writes it: the .track path (read-only)."""
    from headsplat import api

    path = tmp_path_factory.mktemp("posed_track") / "posed.track"
    api.track(posed_video[0], path, quiet=True)
    return path


@pytest.fixture(scope="session")
def astro_avatar(tmp_path_factory, astronaut_path):
    """An avatar created with the default preset from the astronaut portrait, through the public API."""
    from headsplat import api

    path = tmp_path_factory.mktemp("avatar") / "astro.avatar"
    api.create(astronaut_path, path, quiet=True)
    return path


def write_synthetic_flame(path, n_verts: int = 120, seed: int = 0, extra: dict | None = None,
                          drop: tuple = (), mesh: dict | None = None):
    """Write a small FLAME file in the official layout: a Python-2-style protocol-2 pickle whose
    shapedirs/posedirs are chumpy ``Ch`` objects, J_regressor a scipy csc matrix, arrays referenced through
    ``numpy.core.multiarray`` - the globals the official files carry - without chumpy or old scipy installed.
    ``mesh`` replaces the generated arrays (keys v, faces, weights, reg, shapedirs, posedirs) before they are
    packaged the official way; ``extra`` replaces packaged entries."""
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
    shapedirs = rng.normal(scale=1e-3, size=(n_verts, 3, 400))
    posedirs = rng.normal(scale=1e-4, size=(n_verts, 3, 36))
    if mesh:
        v, faces, weights, reg = (mesh.get(k, d) for k, d in zip(("v", "faces", "weights", "reg"),
                                                                   (v, faces, weights, reg)))
        shapedirs, posedirs = mesh.get("shapedirs", shapedirs), mesh.get("posedirs", posedirs)
        faces = faces.astype(np.uint32)
    import scipy.sparse as sp

    csc = sp.csc_matrix(reg)
    jr = CscMatrix()
    jr.__dict__.update({"_shape": csc.shape, "data": csc.data, "indices": csc.indices.astype(np.int32),
                        "indptr": csc.indptr.astype(np.int32), "maxprint": 50, "format": "csc"})
    model = {
        "f": faces,
        "v_template": v,
        "shapedirs": ch(shapedirs),
        "posedirs": ch(posedirs),
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


def write_flame_like_head(path, seed: int = 0):
    """A trackable FLAME-layout file built from the open rig's head: its template and triangles, the first
    expression directions from the open rig's named expressions, linear-stretch shape directions, a jaw
    joint behind the mouth skinning the lower face, and two eyeballs behind the eye openings. Returns the
    path. The real FLAME cannot be downloaded; this file has its layout and enough of its behaviour for
    round trips."""
    import numpy as np

    from headsplat.face.indices import MOUTH_CORNERS, eye_centres
    from headsplat.rig.open_rig import OpenRig

    rng = np.random.default_rng(seed)
    rig = OpenRig()
    n_head = int(rig.triangles.max()) + 1  # the mouth cavity's vertices come after the head's
    v = rig.template[:n_head].double().numpy()
    faces = rig.triangles.numpy()
    spread = rig.spread[:n_head].double().numpy()
    # eyeballs: icosphere-like point sets (convex hulls) 12 mm in radius behind each eye
    from scipy.spatial import ConvexHull

    d = rng.normal(size=(60, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    d[0] = (0, 0, 1)  # the pupil
    ball_f = ConvexHull(d).simplices
    eyes = []
    # FLAME's joint 3 is the eye on the +x side, joint 4 the other: put that eyeball first
    for centre in sorted(eye_centres(v[:478]), key=lambda c: -c[0]):
        c = centre - np.array([0.0, 0.0, 0.014])
        eyes.append(c + 0.012 * d)
    all_v = np.concatenate([v] + eyes)
    nv = len(all_v)
    all_f = np.concatenate([faces, ball_f + n_head, ball_f + n_head + 60])
    # joints: root and neck low in the head, jaw hinge behind the mouth, eye centres
    corners = v[MOUTH_CORNERS]
    mouth_y, mouth_z = corners[:, 1].mean(), corners[:, 2].mean()

    def between(target):  # a symmetric pair of vertices whose midpoint is near target (inside the head)
        i = np.argmin(((v - target) ** 2).sum(1))
        j = np.argmin(((v - target * np.array([-1, 1, 1])) ** 2).sum(1))
        return i, j

    reg = np.zeros((5, nv))
    for row, target in ((0, (0.06, mouth_y - 0.06, mouth_z - 0.09)), (1, (0.06, mouth_y - 0.06, mouth_z - 0.09)),
                        (2, (0.065, mouth_y + 0.01, mouth_z - 0.085))):
        i, j = between(np.array(target))
        reg[row, [i, j]] = 0.5
    reg[3, n_head:n_head + 60] = 1 / 60
    reg[4, n_head + 60:] = 1 / 60
    # skinning: the lower face (below the line through the mouth corners, in front of the hinge) is the jaw's
    t = (v[:, 0] - corners[0, 0]) / (corners[1, 0] - corners[0, 0])
    line_y = corners[0, 1] + t * (corners[1, 1] - corners[0, 1])
    jaw_w = 1 / (1 + np.exp(-(line_y - v[:, 1]) / 0.0015)) * np.clip((v[:, 2] - (mouth_z - 0.06)) / 0.03, 0, 1)
    weights = np.zeros((nv, 5))
    weights[:n_head, 1] = 1 - jaw_w
    weights[:n_head, 2] = jaw_w
    weights[n_head:n_head + 60, 3] = 1
    weights[n_head + 60:, 4] = 1
    # expression directions: the open rig's named expressions, spread onto the head; shape: linear stretches
    # orthogonalised like FLAME's PCA directions (1 unit: about 2 mm RMS over the face)
    exprdirs = np.zeros((nv, 3, 100))
    basis = rig.basis.double().numpy().reshape(len(rig.basis), -1)
    q, _ = np.linalg.qr(basis.T)
    basis = (q.T * np.sqrt(basis.shape[1] / 3) * 0.002).reshape(-1, 478, 3)
    for k in range(min(len(basis), 100)):
        exprdirs[:n_head, :, k] = spread @ basis[k]
    shapedirs = np.zeros((nv, 3, 300))
    for k in range(20):
        A = rng.normal(scale=0.03, size=(3, 3))
        A = (A + A.T) / 2  # stretches only: a rotation in the shape space would be ambiguous with head pose
        shapedirs[:, :, k] = all_v @ A.T
    return write_synthetic_flame(path, n_verts=nv, seed=seed, mesh=dict(
        v=all_v, faces=all_f, weights=weights, reg=reg, shapedirs=np.concatenate([shapedirs, exprdirs], 2),
        posedirs=rng.normal(scale=1e-5, size=(nv, 3, 36))))


@pytest.fixture(scope="session")
def flame_head_file(tmp_path_factory):
    """A trackable FLAME-layout file (see write_flame_like_head), named like FLAME 2023 Open."""
    return write_flame_like_head(tmp_path_factory.mktemp("flame") / "flame2023_Open.pkl")


def pad_flame_file(src, dst, n_verts: int = 5023, seed: int = 0):
    """``src`` (a FLAME-layout file) padded to ``n_verts`` vertices, FLAME's count, for code that needs FLAME's
    topology size (learned models, CAP4D's vertex indices): the extra vertices repeat random original ones
    (position, skinning, blend shapes), take no part in the joints and have no faces. Returns ``dst``."""
    import numpy as np

    from headsplat.rig.flame.loader import load_flame_file

    d = load_flame_file(src)
    n = d.v_template.shape[0]
    idx = np.random.default_rng(seed).integers(0, n, n_verts - n)
    sd = np.concatenate([d.shapedirs, d.exprdirs], 2)
    P = d.posedirs.reshape(d.posedirs.shape[0], n, 3)
    mesh = dict(v=np.concatenate([d.v_template, d.v_template[idx]]), faces=d.faces,
                weights=np.concatenate([d.weights, d.weights[idx]]), shapedirs=np.concatenate([sd, sd[idx]]),
                posedirs=np.concatenate([P, P[:, idx]], 1).transpose(1, 2, 0),
                reg=np.concatenate([d.J_regressor, np.zeros((d.J_regressor.shape[0], n_verts - n))], 1))
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    write_synthetic_flame(dst, n_verts=n_verts, mesh=mesh)
    return Path(dst)


def write_cap4d_assets(folder, flame_file, n_generated: int = 64, seed: int = 0):
    """A folder laid out like CAP4D's ``data/assets`` for a FLAME-layout file: the pose-map template (the file's
    template and CAP4D's mouth, with its triangles), the head vertices (those with faces), a blink direction
    closing the upper face a little, and generation expressions and eye rotations drawn at random. Returns it."""
    import numpy as np
    import torch

    from headsplat.models.cap4d.flame import LIP_VERTEX, CAP4DFlame
    from headsplat.rig.flame.loader import load_flame_file

    rng = np.random.default_rng(seed)
    folder = Path(folder)
    (folder / "flame").mkdir(parents=True, exist_ok=True)
    (folder / "datasets").mkdir(parents=True, exist_ok=True)
    d = load_flame_file(flame_file, n_shape=150, n_expr=65)
    v = d.v_template
    # FLAME's lip vertex where the file has FLAME's size, else a frontal vertex stands in
    f = CAP4DFlame(d) if len(v) > LIP_VERTEX else CAP4DFlame(d, lip_vertex=int(np.argmax(v[:, 2] - np.abs(v[:, 0]))))
    template = torch.cat([f.template, f.mouth_vertices(f.template)]).numpy()
    faces = f.faces.numpy()
    with open(folder / "flame" / "cap4d_flame_template.obj", "w") as fh:
        fh.writelines(f"v {x:.6f} {y:.6f} {z:.6f}\n" for x, y, z in template)
        fh.writelines(f"f {a + 1}/{a + 1} {b + 1}/{b + 1} {c + 1}/{c + 1}\n" for a, b, c in faces)
    used = np.unique(d.faces)
    np.savetxt(folder / "flame" / "head_vertices.txt", used, fmt="%d")
    blink = np.zeros_like(v)
    blink[:, 1] = -0.002 * (v[:, 1] > np.median(v[:, 1]))
    np.save(folder / "flame" / "blink_blendshape.npy", blink.astype(np.float32))
    np.savez(folder / "datasets" / "gen_data.npz", expr=(rng.normal(size=(n_generated, 65)) * 0.5).astype(np.float32),
             eye_rot=(rng.normal(size=(n_generated, 3)) * 0.05).astype(np.float32))
    return folder


def write_tiny_gagavatar(head, path):
    """A tiny GAGAvatar checkpoint in the released file's structure (plus its config) for ``head``'s FLAME mesh,
    its weights drawn so that outputs are not trivial."""
    import torch

    from headsplat.models.gagavatar.model import GagaConfig, GAGAvatar

    torch.manual_seed(0)
    m = GAGAvatar(GagaConfig.tiny(n_vertices=int(head.flame.v_template.shape[0])))
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    torch.save({"model": m.state_dict(), "meta_cfg": {}, "headsplat_config": m.cfg.to_dict()}, path)
    return path


@pytest.fixture(scope="session")
def tiny_gagavatar(flame_head_file, astronaut_path, tmp_path_factory):
    """(avatar, weights): a tiny GAGAvatar checkpoint for the trackable FLAME-layout test head, and the
    astronaut's GAGAvatar avatar made with it through the CLI (once for the session: the contract tests and the
    GAGAvatar pipeline tests share it)."""
    from headsplat.cli.main import main
    from headsplat.rig.flame.head import FlameHead

    weights = write_tiny_gagavatar(FlameHead.from_file(flame_head_file),
                                   tmp_path_factory.mktemp("weights") / "tiny_gagavatar.pt")
    path = tmp_path_factory.mktemp("gaga") / "astro.avatar"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("config")))
        assert main(["-q", "create", str(astronaut_path), "--method", "gagavatar", "--weights", str(weights),
                     "--flame-model", str(flame_head_file), "-o", str(path)]) == 0
    return path, weights


# -- StyleGAN/EG3D persistence pickles in the released structure, written without the authors' code -------------
def reconstruct_persistent_obj(meta):  # never called: only its name goes into the pickle
    raise AssertionError


reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"


@pytest.fixture
def torch_utils_stand_in(monkeypatch):
    """``torch_utils.persistence`` as a pickler must find it (by name only), while a test writes such pickles."""
    import sys
    import types

    tu, tup = types.ModuleType("torch_utils"), types.ModuleType("torch_utils.persistence")
    tup._reconstruct_persistent_obj = reconstruct_persistent_obj
    tu.persistence = tup
    monkeypatch.setitem(sys.modules, "torch_utils", tu)
    monkeypatch.setitem(sys.modules, "torch_utils.persistence", tup)
    return tup


def persistent_reduce(class_name: str, state: dict, module_src: str = "# source\n"):
    """What ``torch_utils.persistence`` reduces a persistent object to: ``(_reconstruct_persistent_obj, (meta,))``
    (for a pickler's ``reducer_override``; needs the ``torch_utils_stand_in`` fixture while pickling)."""
    import sys

    meta = dict(type="class", version=6, module_src=module_src, class_name=class_name, state=state)
    # the stand-in module's function (a test importing this file gets a second copy of it)
    return sys.modules["torch_utils.persistence"]._reconstruct_persistent_obj, (meta,)


# -- Portrait4D-v2: tiny networks of the same code, in the released pickle's structure -------------------------
P4D_RENDERING = {"superresolution_module": "training.superresolution.SuperresolutionHybrid8XDC", "sr_antialias": True,
                 "superresolution_noise_mode": "none", "decoder_lr_mul": 1.0, "clamp_mode": "softplus",
                 "disparity_space_sampling": False, "depth_resolution": 6, "depth_resolution_importance": 6,
                 "ray_start": "auto-plane", "ray_end": "auto-plane", "box_warp": 1.3, "c_scale": 1.0}
P4D_TINY_SIZES = {"resnet_width": 8, "global_channels": 16, "canonical_dims": 64, "canonical_heads": 2,
                  "motion_hidden": 32, "motion_tokens": 2, "triplane_dims": 64, "triplane_width": 16,
                  "background_width": 8, "sr_widths": (16, 8)}


def write_persistence_pickle(path, obj, root_type, class_name: str, init_kwargs: dict, root_state: dict | None = None,
                             children: dict | None = None):
    """``obj`` (a dict of networks) as a StyleGAN persistence pickle in the released structure: headsplat's modules
    as persistent objects (``cfg``/``deformer_state`` left out), a ``root_type`` one as the reference's
    ``class_name`` with ``init_kwargs`` and ``root_state`` (attributes pickled with it) and ``children`` (extra
    submodules); torch's modules by reference."""
    import pickle
    import sys
    import types

    from torch import nn

    class Pickler(pickle.Pickler):
        def reducer_override(self, o):
            if isinstance(o, nn.Module) and type(o).__module__.startswith("headsplat."):
                state = {k: v for k, v in o.__dict__.items() if k not in ("cfg", "deformer_state")}
                name = type(o).__name__
                if isinstance(o, root_type):
                    name, state["_init_args"], state["_init_kwargs"] = class_name, (), dict(init_kwargs)
                    state.update(root_state or {})
                    state["_modules"] = {**state["_modules"], **(children or {})}
                return persistent_reduce(name, state)
            return NotImplemented

    tu, tup = types.ModuleType("torch_utils"), types.ModuleType("torch_utils.persistence")
    tup._reconstruct_persistent_obj = reconstruct_persistent_obj
    tu.persistence = tup
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(sys.modules, "torch_utils", tu)
        mp.setitem(sys.modules, "torch_utils.persistence", tup)
        with open(path, "wb") as f:
            Pickler(f).dump(obj)
    return path


def write_portrait4d_pickle(path, model, init_kwargs: dict, rendering: dict, deformer=None):
    """``{"G_ema": model, ...}`` as the released pickle holds it (:func:`write_persistence_pickle`): the root as
    ``TriPlaneReconstructorNeutralize`` with the pickled ``rendering_kwargs`` and ``deformer`` (an ``nn.Module``
    of buffers) as its ``deformer`` child."""
    from headsplat.models.portrait4d.model import CLASS_NAME, Portrait4D

    return write_persistence_pickle(path, {"G": None, "D": None, "G_ema": model, "augment_pipe": None}, Portrait4D,
                                    CLASS_NAME, init_kwargs, {"rendering_kwargs": dict(rendering)},
                                    None if deformer is None else {"deformer": deformer})


def portrait4d_deformer(flame_file):
    """The checkpoint's ``deformer`` buffers for a FLAME file, as the reference builds them: DECA's FLAME (300
    shape + 100 expression directions) x3, re-centred on the template's neck joint; the "simplified" mesh the
    full one (each vertex its own barycentre)."""
    import torch
    from torch import nn

    from headsplat.rig.flame.loader import load_flame_file

    d = load_flame_file(flame_file)
    pad = lambda a, n: np.concatenate([a, np.zeros(a.shape[:2] + (n - a.shape[2],))], 2)  # noqa: E731
    shapedirs = np.concatenate([pad(d.shapedirs, 300), pad(d.exprdirs, 100)], 2) * 3
    vt = d.v_template.astype(np.float64) * 3
    neck = d.J_regressor @ vt
    flame = nn.Module()
    for k, v in (("v_template", vt - neck[1]), ("shapedirs", shapedirs), ("posedirs", d.posedirs * 3),
                 ("J_regressor", d.J_regressor), ("lbs_weights", d.weights)):
        flame.register_buffer(k, torch.tensor(np.asarray(v), dtype=torch.float32))
    parents = torch.tensor(d.parents, dtype=torch.long)
    parents[0] = -1
    flame.register_buffer("parents", parents)
    flame.register_buffer("faces_tensor", torch.tensor(d.faces, dtype=torch.long))
    fd = nn.Module()
    fd.flame_model = flame
    nv = len(d.v_template)
    fd.register_buffer("simplify_idxs", torch.arange(nv)[:, None].repeat(1, 3))
    fd.register_buffer("simplify_baris", torch.tensor([[1.0, 0.0, 0.0]]).repeat(nv, 1))
    fd.register_buffer("simplify_faces", torch.tensor(d.faces, dtype=torch.long))
    deformer = nn.Module()
    deformer.flame_deform = fd
    return deformer


def write_tiny_portrait4d(flame_file, path, seed: int = 0):
    """A tiny Portrait4D-v2 network (the same code at small widths, 64² neural renders to 512²) with the
    deformer of ``flame_file``, its weights drawn so that outputs are not trivial, pickled in the released
    structure."""
    import torch

    from headsplat.models.portrait4d.model import Portrait4D, Portrait4DConfig

    init_kwargs = {"mot_dims": 548, "rendering_kwargs": P4D_RENDERING, "has_background": True,
                   "num_blocks_neutral": 1, "num_blocks_motion": 1, "motion_map_layers": 2, "sr_num_fp16_res": 0,
                   "sr_kwargs": {"channel_base": 256, "channel_max": 16, "fused_modconv_default": "inference_only",
                                 "use_ws_ones": False}, "sizes": P4D_TINY_SIZES}
    torch.manual_seed(seed)
    model = Portrait4D(Portrait4DConfig.from_init_kwargs(init_kwargs)).eval()
    with torch.no_grad():
        model.w_avg.normal_()
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
        # motion codes that move the planes visibly (default initialisation barely lets them through)
        for name in ("proj_y", "proj_y_neutral"):
            getattr(model.encoder_canonical, name).weight.mul_(40)
    return write_portrait4d_pickle(path, model, init_kwargs, P4D_RENDERING, portrait4d_deformer(flame_file))


def write_motion_encoder(path, seed: int = 0):
    """PD-FGC's motion encoder (its released size, 9M parameters) with random weights, as ``motion_model.pth``
    (a state dict with an extra key, as the released file has keys the network lacks)."""
    import torch

    from headsplat.models.portrait4d.motion import FanEncoder

    torch.manual_seed(seed)
    enc = FanEncoder().eval()
    with torch.no_grad():  # codes of the released encoder's magnitude (about 1) that follow the face
        enc.model.conv6.bias.fill_(1.0)  # its one-channel map stays above the ReLU (random weights kill it)
        for head in (enc.to_mouth, enc.eye_embed, enc.emo_embed, enc.headpose_embed):
            head[-1].weight.mul_(30)
    state = dict(enc.state_dict())
    state["audio_encoder.unused"] = torch.zeros(2)
    torch.save(state, path)
    return path


@pytest.fixture(scope="session")
def tiny_portrait4d(flame_head_file, tmp_path_factory):
    """(network pickle, motion_model.pth): a tiny Portrait4D-v2 for the trackable FLAME-layout test head and a
    random PD-FGC encoder."""
    folder = tmp_path_factory.mktemp("p4d")
    return (write_tiny_portrait4d(flame_head_file, folder / "portrait4d-tiny.pkl"),
            write_motion_encoder(folder / "motion_model.pth"))


@pytest.fixture(scope="session")
def portrait4d_avatar(tiny_portrait4d, flame_head_file, astronaut_path, tmp_path_factory):
    """(avatar, options its commands need): the astronaut's avatar made by ``create --method portrait4d`` with the
    tiny network (once for the session: the contract tests and the Portrait4D pipeline tests share it)."""
    from headsplat.cli.main import main

    weights, motion = tiny_portrait4d
    path = tmp_path_factory.mktemp("p4d_avatar") / "astro.avatar"
    opts = {"weights": str(weights), "motion_weights": str(motion), "flame_model": str(flame_head_file),
            "neural_resolution": 32}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("config")))
        assert main(["-q", "create", str(astronaut_path), "--method", "portrait4d", "--weights", str(weights),
                     "--motion-weights", str(motion), "--flame-model", str(flame_head_file), "--neural-resolution",
                     "32", "-o", str(path)]) == 0
    return path, opts
