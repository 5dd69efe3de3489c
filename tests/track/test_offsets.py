"""Free face offsets: the rig applies them, the solver recovers known ones, the smoother keeps cuts, a rendered
video with a deformation the shapes cannot make is tracked back, files and retargeting carry them."""

import copy

import cv2
import numpy as np
import pytest
import torch

from headsplat.core.camera import project_points, world_to_opencv
from headsplat.core.errors import ShapeError
from headsplat.core.rotation import axis_angle_to_matrix
from headsplat.rig.controls import beyond_shapes_deformation
from headsplat.track.offsets import OffsetConfig, fit_offsets, smooth_in_time


def _bump(rig, centre: int, direction, radius: float = 0.012) -> np.ndarray:
    """(478, 3) a smooth displacement around one face vertex (template units), none on the irises."""
    v = rig.template[:478].double().numpy()
    w = np.exp(-((v - v[centre]) ** 2).sum(-1) / (2 * radius ** 2))
    w[468:] = 0
    return w[:, None] * np.asarray(direction, np.float64)[None]


def test_rig_adds_offsets_to_the_face_scaled_after_the_shapes_and_spreads_them_to_the_shell(rig):
    torch.manual_seed(0)
    ident = torch.randn(478, 3) * 0.002
    scale = torch.tensor(1.1)
    exp = torch.zeros(rig.n_expressions)
    exp[rig.expression_names.index("blink_left")] = 1.0
    rot, trans = torch.tensor([0.1, 0.3, 0.0]), torch.tensor([0.0, 0.0, -0.6])
    offsets = torch.from_numpy(_bump(rig, 1, (0.0, 0.0, 0.004))).float()
    base = rig(ident, scale, exp, rot, trans).vertices
    moved = rig(ident, scale, exp, rot, trans, offsets=offsets).vertices
    R = axis_angle_to_matrix(rot)
    assert torch.allclose(moved[:478] - base[:478], scale * offsets @ R.T, atol=1e-6)
    # the outline's share reaches the shell; the eyeballs and teeth do not follow the face
    assert torch.allclose(moved - base, (scale * rig.expression_spread @ offsets) @ R.T, atol=1e-6)
    with pytest.raises(ShapeError, match=r"offsets: expected shape \(\.\.\., 478, 3\), got \(468, 3\)"):
        rig(ident, scale, exp, rot, trans, offsets=torch.zeros(468, 3))


def test_smoother_matches_its_normal_equations_and_never_crosses_a_cut():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 4))
    found = np.ones(12, bool)
    found[3] = False
    shots = np.array([0] * 7 + [1] * 5)
    lam = 2.0
    y = smooth_in_time(x, found, shots, lam)
    for s in (0, 1):
        idx = np.flatnonzero(shots == s)
        n = len(idx)
        d2 = np.zeros((n - 2, n))
        d2[np.arange(n - 2), np.arange(n - 2)] = 1
        d2[np.arange(n - 2), np.arange(n - 2) + 1] = -2
        d2[np.arange(n - 2), np.arange(n - 2) + 2] = 1
        w = np.diag(found[idx].astype(float))
        assert np.allclose(y[idx], np.linalg.solve(w + lam * d2.T @ d2, w @ x[idx]))
    # a step at the cut stays a step
    step = np.repeat(np.array([0.0, 1.0]), [7, 5])[:, None]
    assert np.allclose(smooth_in_time(step, np.ones(12, bool), shots, 5.0), step)


def _posed(rig, T=3):
    exp = torch.zeros(T, rig.n_expressions)
    rot = torch.tensor([[0.0, 0.0, 0.0], [0.05, 0.3, 0.0], [-0.05, -0.2, 0.1]])[:T]
    trans = torch.tensor([0.0, 0.0, -0.7]).expand(T, 3)
    with torch.no_grad():
        pts = rig(torch.zeros(478, 3), torch.tensor(1.0), exp, rot, trans, face_only=True).vertices.double()
    return pts, axis_angle_to_matrix(rot.double())


def test_solver_recovers_a_smooth_deformation_and_ignores_rigid_motion(rig):
    focal, T = 900.0, 3
    pts, R = _posed(rig, T)
    K = torch.tensor([[focal, 0, 256], [0, focal, 256], [0, 0, 1.0]], dtype=torch.float64)
    uv = project_points(pts, world_to_opencv().double(), K)[0].numpy()
    field = beyond_shapes_deformation(rig)
    moved = pts + torch.from_numpy(field) @ R.transpose(-1, -2)
    residuals = project_points(moved, world_to_opencv().double(), K)[0].numpy() - uv
    iod = np.full(T, 90.0)
    args = (pts.numpy(), R.numpy(), focal)
    no_smoothing = OffsetConfig(temporal=0.0)
    got = fit_offsets(*args, residuals, np.ones((T, 478)), np.ones(T, bool), iod, 1.0, rig, np.zeros(T), no_smoothing)
    # the image-plane motion the offsets make, against the known one, where the field moves
    fit_uv = project_points(pts + torch.from_numpy(got).double() @ R.transpose(-1, -2), world_to_opencv().double(),
                            K)[0].numpy() - uv
    moving = np.linalg.norm(residuals, axis=-1) > 0.3 * np.linalg.norm(residuals, axis=-1).max()
    err = np.linalg.norm(fit_uv - residuals, axis=-1)[moving].mean()
    print(f"known motion {np.linalg.norm(residuals, axis=-1)[moving].mean():.2f} px, recovered within {err:.2f} px")
    assert err < 0.25 * np.linalg.norm(residuals, axis=-1)[moving].mean()
    # unseen vertices (weight 0) get no data; a rigid shift of the whole face is the pose's, not the offsets'
    shift = np.zeros((T, 478, 2))
    shift[..., 0] = 3.0
    rigid = fit_offsets(*args, shift, np.ones((T, 478)), np.ones(T, bool), iod, 1.0, rig, np.zeros(T), no_smoothing)
    assert np.abs(rigid).max() < 0.05 * np.abs(got).max()
    unseen = fit_offsets(*args, residuals, np.zeros((T, 478)), np.ones(T, bool), iod, 1.0, rig, np.zeros(T))
    assert not unseen.any()


def test_a_rendered_deformation_beyond_the_shapes_is_tracked_back(rig, tmp_path):
    """The textured rig performs a one-sided sneer and an uneven brow knit (no shape, pose or scale makes them:
    :func:`beyond_shapes_deformation`)
    with head turns and talking; the tracked rig with its offsets moves those regions as the truth does."""
    from skimage import data

    from headsplat.api import render_posed_photo
    from headsplat.media import open_frames
    from headsplat.track import track_source
    from headsplat.track.fit import FitConfig
    from headsplat.track.tracker import free_face_motion

    n = 40
    t = np.arange(n) / 25.0
    env = np.clip(np.sin(2 * np.pi * t / 1.2), 0, None)
    field = beyond_shapes_deformation(rig)
    offsets = (env[:, None, None] * field[None]).astype(np.float32)
    controls = {"head_yaw": (15 * np.sin(2 * np.pi * t / 1.6)).astype(np.float32),
                "jaw_open": (0.4 * np.clip(np.sin(2 * np.pi * t / 0.8), 0, None)).astype(np.float32)}
    path = tmp_path / "sneer.mp4"
    truth = render_posed_photo(data.astronaut(), path, controls=controls, quiet=True, rig=rig, offsets=offsets)
    # what track_source does, in its two steps: the landmark fit, then the free motion
    shapes = track_source(open_frames(path), rig=rig, quiet=True, config=FitConfig(offsets=None))
    tr = free_face_motion(open_frames(path), shapes, rig, quiet=True)
    assert shapes.offsets is None and tr.offsets.shape == (n, 478, 3)

    K = torch.tensor([[truth.focal, 0, 256], [0, truth.focal, 256], [0, 0, 1.0]])

    def uv(**kw):
        with torch.no_grad():
            return project_points(rig(**kw, face_only=True).vertices, world_to_opencv(), K)[0].numpy()
    gt = dict(identity=torch.from_numpy(truth.identity), scale=torch.tensor(truth.identity_scale),
              expression=torch.from_numpy(truth.expression), rotation=torch.from_numpy(truth.rotation),
              translation=torch.from_numpy(truth.translation))
    u_true, u_plain = uv(**gt, offsets=torch.from_numpy(offsets)), uv(**gt)
    u_shapes, u_offsets = uv(**shapes.params()), uv(**tr.params(with_offsets=True))
    field_px = np.linalg.norm(u_true - u_plain, axis=-1)
    region = field_px.max(0) > 0.3 * field_px.max()

    def error(u):  # motion since the first frame (the fitted identity differs from the truth's)
        return np.linalg.norm((u - u[0]) - (u_true - u_true[0]), axis=-1)[:, region].mean()
    known, found = (u_true - u_plain)[:, region], (u_offsets - u_shapes)[:, region]
    gain = float((known * found).sum() / (known * known).sum())
    corr = float(np.corrcoef(known.ravel(), found.ravel())[0, 1])
    print(f"field up to {field_px.max():.1f} px; region error {error(u_shapes):.2f} px with the shapes alone, "
          f"{error(u_offsets):.2f} px with the offsets; offsets' motion vs the field's: correlation {corr:.3f}, "
          f"gain {gain:.3f}")
    assert corr > 0.75 and 0.6 < gain < 1.2  # measured 0.894 and 0.855 (60 frames)
    assert error(u_offsets) < 0.7 * error(u_shapes)  # measured 1.22 vs 2.46 px (60 frames)


def test_files_and_frame_selection_carry_offsets(tmp_path):
    from headsplat.core.errors import InputError
    from headsplat.track.tracking import Tracking

    rng = np.random.default_rng(0)
    n = 4
    tr = Tracking(rig="open", width=64, height=48, fps=25.0, focal=80.0, identity=np.zeros((478, 3), np.float32),
                  identity_scale=1.0, expression_names=("a",), rotation=np.zeros((n, 3), np.float32),
                  translation=np.zeros((n, 3), np.float32), expression=np.zeros((n, 1), np.float32),
                  landmarks=np.zeros((n, 478, 3), np.float32), found=np.ones(n, bool),
                  fit_error=np.zeros(n, np.float32), crops=np.zeros((n, 2, 3)), crop_size=512,
                  times=np.arange(n) / 25.0, offsets=rng.normal(size=(n, 478, 3)).astype(np.float32))
    tr.save(tmp_path / "a.track")
    back = Tracking.load(tmp_path / "a.track")
    assert np.array_equal(back.offsets, tr.offsets)
    assert np.array_equal(back.select([1, 3]).offsets, tr.offsets[[1, 3]])
    assert torch.equal(back.params(with_offsets=True)["offsets"], torch.from_numpy(tr.offsets))
    assert "offsets" not in back.params()
    tr.offsets = tr.offsets[:, :10]
    tr.save(tmp_path / "bad.track")
    with pytest.raises(InputError, match=r"bad.track: face offsets of shape \(4, 10, 3\), expected \(4, 478, 3\)"):
        Tracking.load(tmp_path / "bad.track")


def test_transfer_follows_each_faces_local_size_and_orientation():
    from headsplat.rig.open_rig import load_face_template
    from headsplat.rig.transfer import transfer_offsets

    template = torch.from_numpy(load_face_template()[0])
    rng = np.random.default_rng(1)
    off = torch.from_numpy(rng.normal(size=(2, 478, 3)) * 1e-3)
    zero = torch.zeros(478, 3, dtype=torch.float64)
    assert torch.allclose(transfer_offsets(off, zero, zero), off)
    # a face 20 % larger everywhere takes 20 % larger offsets, in the same directions
    bigger = transfer_offsets(off, zero, 0.2 * template)
    assert torch.allclose(bigger[:, :468], 1.2 * off[:, :468])
    assert torch.equal(bigger[:, 468:], off[:, 468:])
    # a face turned about y: an offset along the source's surface normal goes along the target's
    from headsplat.rig.transfer import vertex_frames

    c, s = np.cos(0.3), np.sin(0.3)
    turn = torch.tensor([[c, 0, s], [0, 1, 0], [-s, 0, c]], dtype=torch.float64)
    tris = torch.from_numpy(load_face_template()[1])
    normals = vertex_frames(template, tris)[0]
    along = torch.zeros(478, 3, dtype=torch.float64)
    along[:468] = 1e-3 * normals[:468]
    turned = transfer_offsets(along, zero, template @ turn.T - template)
    assert torch.allclose(turned[:468], along[:468] @ turn.T, atol=1e-9)


def test_rasterizer_and_the_warp_through_a_mesh():
    """The vectorised rasteriser finds the nearest triangle and its barycentrics at pixel centres; warping an
    image through an unmoved mesh gives the image back inside it, a translated mesh carries it along."""
    from headsplat.render.mesh_texture import rasterize_triangles
    from headsplat.track.photometric import warp_through_mesh

    uv = np.array([[8.0, 8.0], [56.0, 8.0], [8.0, 56.0], [56.0, 56.0]])
    tris = np.array([[0, 1, 2], [1, 3, 2]])
    face, bary = rasterize_triangles(uv, np.ones(4), tris, 64, 64)
    assert face[10, 10] == 0 and face[50, 50] == 1 and face[2, 2] == -1 and face[60, 30] == -1
    centre = np.array([20.5, 12.5])  # pixel (x 20, y 12)
    assert np.allclose((bary[12, 20][:, None] * uv[tris[0]]).sum(0), centre)
    # two overlapping triangles: the nearer (smaller depth) wins
    face2, _ = rasterize_triangles(np.concatenate([uv[:3], uv[:3]]), np.r_[2.0, 2.0, 2.0, 1.0, 1.0, 1.0],
                                   np.array([[0, 1, 2], [3, 4, 5]]), 64, 64)
    assert face2[20, 20] == 1

    rng = np.random.default_rng(0)
    tex = cv2.GaussianBlur(rng.integers(0, 255, (64, 64, 3)).astype(np.uint8), (0, 0), 2)
    points = np.concatenate([uv, np.full((4, 1), -1.0)], 1)
    same, cover = warp_through_mesh(tex, uv, uv, points, tris, np.zeros_like(tex), coarse=4)
    inside = cover > 0
    assert inside[16:48, 16:48].all() and not inside[:4].any()
    assert np.abs(same[inside].astype(int) - tex[inside].astype(int)).max() <= 1
    moved, cover = warp_through_mesh(tex, uv, uv + [3.0, 0.0], points, tris, np.zeros_like(tex), coarse=4)
    assert np.abs(moved[16:48, 19:51].astype(int) - tex[16:48, 16:48].astype(int)).max() <= 1


def test_folding_hands_a_blink_and_brows_made_as_offsets_to_their_coefficients(rig):
    """Offsets that are exactly a half blink of one eye and raised inner brows (what the landmark fit missed and
    the flow saw) become those coefficients, the posed face unchanged; the rest (a bump no shape makes) stays
    in the offsets; a face already explained keeps its coefficients."""
    from headsplat.track.offsets import fold_into_shapes

    names = list(rig.expression_names)
    torch.manual_seed(0)
    ident = (torch.randn(478, 3) * 0.002).double()
    scale = 1.1
    exp = np.zeros((3, len(names)))
    exp[:, names.index("jaw_open")] = 0.3
    exp[2, names.index("blink_left")] = 0.5
    head = copy.deepcopy(rig).double()
    fields = head.expression_fields(ident, torch.tensor(scale, dtype=torch.float64), torch.from_numpy(exp)).numpy()
    offsets = np.zeros((3, 478, 3))
    offsets[0] = 0.5 * fields[0, names.index("blink_left")]
    offsets[1] = 0.6 * (fields[1, names.index("brow_inner_up_left")] + fields[1, names.index("brow_inner_up_right")])
    bump = _bump(rig, 1, (0.0, 0.003, 0.0))  # the nose tip, far from lids and brows
    offsets[1] += bump
    rot = np.array([[0.0, 0.2, 0.0], [0.1, -0.3, 0.0], [0.0, 0.0, 0.0]])
    new, left = fold_into_shapes(rig, ident.numpy(), scale, exp, offsets, rot)
    got = {n: new[:, names.index(n)] for n in ("blink_left", "brow_inner_up_left", "brow_inner_up_right")}
    print({k: v.round(3) for k, v in got.items()})
    assert abs(got["blink_left"][0] - 0.5) < 0.05 and abs(got["blink_left"][2] - 0.5) < 0.02
    assert abs(got["brow_inner_up_left"][1] - 0.6) < 0.06 and abs(got["brow_inner_up_right"][1] - 0.6) < 0.06
    assert np.abs(left[0]).max() < 0.2 * np.abs(offsets[0]).max()
    assert np.abs(left[1, 1] - bump[1]).max() < 0.2 * np.abs(bump[1]).max()  # the nose keeps its bump
    assert np.abs(left[2]).max() < 1e-4  # nothing to fold: the half blink stays as it was
    assert np.allclose(new[:, names.index("jaw_open")], 0.3)  # other shapes untouched
    zero = torch.zeros(3, 3, dtype=torch.float64)
    with torch.no_grad():
        before = head(ident, torch.tensor(scale, dtype=torch.float64), torch.from_numpy(exp), zero, zero,
                      offsets=torch.from_numpy(offsets)).vertices
        after = head(ident, torch.tensor(scale, dtype=torch.float64), torch.from_numpy(new).double(), zero, zero,
                     offsets=torch.from_numpy(left).double()).vertices
    assert (before - after).abs().max() < 1e-6  # the whole head, shell included, where it was (float32 files)
