"""The frames CAP4D's MMDM sees (headsplat.models.cap4d.views), its assets, weights resolution and checkpoint cache.

Against the authors' code (run locally outside the repository): the generated views' cameras
(GenerationDataset.init_flame_params after np.random.seed(124)) equal ours to 4e-16 for three head poses; a whole
dataset item (CAP4DInferenceDataset.__getitem__ with its FLAME skinner on a 5023-vertex test file) equals our frame:
crop boxes identical, NDC vertices 1.7e-7 and offsets 5e-7 relative, ray map 3e-8, crop and reference masks and the
reference image on white (6e-8) equal.
"""

import math

import numpy as np
import pytest
import torch

from headsplat.core.camera import intrinsics_from_focal, project_points, world_to_opencv
from headsplat.core.errors import HeadsplatError, InputError
from headsplat.core.rotation import axis_angle_to_matrix
from headsplat.models.cap4d import views as V
from headsplat.models.cap4d.assets import load_assets, read_obj
from headsplat.models.cap4d.conditioning import project
from headsplat.models.cap4d.flame import CAP4DFlame
from headsplat.rig.flame.loader import load_flame_file

# The first generated camera for head rotation (0.1, 0.5, −0.05) at (0.03, −0.02, −0.8), seed 124, from the
# authors' code (rounded to 6 decimals).
REFERENCE_CAMERA = [[0.968229, -0.0, 0.250067, -0.1991], [-0.063059, 0.967683, 0.244158, -0.192788],
                    [-0.241986, -0.25217, 0.936938, 0.062752], [0.0, 0.0, 0.0, 1.0]]


@pytest.fixture(scope="module")
def flame(flame_head_file):
    d = load_flame_file(flame_head_file, n_shape=150, n_expr=65)
    lip = int(np.argmax(d.v_template[:, 2] - np.abs(d.v_template[:, 0])))
    blink = np.zeros_like(d.v_template)
    blink[:, 1] = -0.002 * (d.v_template[:, 1] > np.median(d.v_template[:, 1]))
    return CAP4DFlame(d, blink=blink, lip_vertex=lip)


def test_generated_cameras_equal_the_authors_and_orbit_the_head():
    # the reference's parameters are float32
    rot = np.array([0.1, 0.5, -0.05], np.float32).astype(np.float64)
    tra = np.array([0.03, -0.02, -0.8], np.float32).astype(np.float64)
    cams, angles = V.generation_cameras(np.eye(4), rot, tra, 28, seed=124)
    np.testing.assert_allclose(cams[0], REFERENCE_CAMERA, atol=1e-6)
    assert (((angles[:, 0] / 55) ** 2 + (angles[:, 1] / 20) ** 2) < 1).all()
    assert np.ptp(angles[:, 0]) > 40 and np.ptp(angles[:, 1]) > 15  # the ellipse is covered
    target = tra * np.array([1, -1, -1])
    for c in cams:  # every camera stays at the reference's distance from the head, looking from around it
        centre = -c[:3, :3].T @ c[:3, 3]
        assert abs(np.linalg.norm(centre - target) - np.linalg.norm(target)) < 1e-9


def test_cameras_centre_on_the_third_row_of_the_head_rotation():
    """The reference's facing direction is minus the rotation matrix's third *row* (y, z negated): a head
    turned by +θ about y centres the cameras on yaw +θ (its third column would give −θ)."""
    theta = 0.4
    d = V.facing_direction(np.array([0.0, theta, 0.0]))
    np.testing.assert_allclose(d, [math.sin(theta), 0.0, math.cos(theta)], atol=1e-12)
    yaw, pitch = V.centre_yaw_pitch(np.eye(4), d)
    assert yaw == pytest.approx(math.degrees(theta)) and pitch == pytest.approx(0.0, abs=1e-9)
    assert V.ellipse_angles(3, 0.0, 20.0, np.random.RandomState(0)).tolist() == [[0.0, 0.0]] * 3


def test_reference_fit_reproduces_known_cap4d_heads(flame):
    g = torch.Generator().manual_seed(0)
    n = 3
    shape = torch.randn(150, generator=g) * 0.5
    expr = torch.randn(n, 65, generator=g) * 0.5
    eyes = torch.randn(n, 3, generator=g) * 0.1
    z = torch.zeros(n, 3)
    with torch.no_grad():
        verts, _ = flame(shape, expr, z, z, eyes)
    nv = flame.template.shape[0]
    s, e, err = V.fit_cap4d_parameters(flame, verts[:, :nv], eyes, ridge=1e-9)
    with torch.no_grad():
        again, _ = flame(s, e, z, z, eyes)
    assert err.max() < 1e-6 and (again - verts).abs().max() < 1e-5  # metres
    used = flame.exprdirs.abs().sum((0, 1)) > 0  # directions the test head has
    torch.testing.assert_close(e[:, used], expr[:, used], atol=1e-3, rtol=0)


def test_a_pivoted_camera_is_the_same_picture_as_the_head_moved(flame):
    """headsplat's view set keeps the camera and moves the head; CAP4D moves the camera: both project every
    vertex to the same pixel, for any scale of headsplat's head."""
    cams, _ = V.generation_cameras(np.eye(4), np.array([0.05, -0.2, 0.02]), np.array([0.01, 0.02, -0.7]), 5, seed=3)
    rot, tra_cap4d, scale = np.array([0.05, -0.2, 0.02]), np.array([0.01, 0.02, -0.7]), 1.3
    K = intrinsics_from_focal(torch.tensor(900.0, dtype=torch.float64), 640, 480)
    v = flame.template.double()
    R = axis_angle_to_matrix(torch.tensor(rot))
    for c in cams:
        world = v @ R.T + torch.tensor(tra_cap4d)
        cap4d = project(world @ torch.tensor(V.OPENCV).T, K, torch.tensor(c))[:, :2]
        r2, t2 = V.camera_as_head_motion(c, rot, tra_cap4d * scale, scale)
        hs = (scale * v) @ axis_angle_to_matrix(torch.tensor(r2)).T + torch.tensor(t2)
        uv, _ = project_points(hs, world_to_opencv().double(), K)
        torch.testing.assert_close(uv, cap4d, atol=1e-6, rtol=0)


def test_reference_crop_is_on_white_and_white_outside_the_frame():
    img = np.full((40, 60, 3), 100, np.uint8)
    matte = np.ones((40, 60), np.float32)
    matte[:, 30:] = 0.0
    out = V.reference_crop(img, matte, np.array([-10, 0, 30, 40]), 40)
    assert out.shape == (40, 40, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out[20, 2], 1.0)  # left of the frame: white
    np.testing.assert_allclose(out[20, 20], 100 / 127.5 - 1, atol=1e-6)  # the person
    np.testing.assert_allclose(V.reference_crop(img, matte, np.array([20, 0, 60, 40]), 40)[20, 30], 1.0)  # matted


def test_assets_are_read_from_the_repository_layout_and_checked(tmp_path, flame_head_file):
    from conftest import write_cap4d_assets

    root = tmp_path / "cap4d"
    write_cap4d_assets(root / "data" / "assets", flame_head_file, n_generated=5)
    nv = load_flame_file(flame_head_file).v_template.shape[0]
    a = load_assets(root, nv)  # the repository root is found as well as data/assets itself
    assert a.template.shape == (nv + 200, 3) and a.expressions.shape == (5, 65) and a.face_mask().any()
    assert a.face_mask()[-1]  # the mouth's triangles are kept
    with pytest.raises(InputError, match="made for .* FLAME vertices, the FLAME file has 5023"):
        load_assets(root, 5023)
    np.save(root / "data" / "assets" / "flame" / "blink_blendshape.npy", np.zeros((3, 3)))
    with pytest.raises(InputError, match=r"blink_blendshape.npy: shape \(3, 3\)"):
        load_assets(root)
    (root / "data" / "assets" / "datasets" / "gen_data.npz").unlink()
    with pytest.raises(InputError, match="datasets/gen_data.npz not found"):
        load_assets(root)
    with pytest.raises(InputError, match="--cap4d-assets"):
        load_assets(None)


def test_obj_polygons_are_fanned_into_triangles(tmp_path):
    p = tmp_path / "q.obj"
    p.write_text("v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nvt 0 0\nf 1/1 2/1 3/1 4/1\n")
    v, f = read_obj(p)
    assert v.shape == (4, 3) and f.tolist() == [[0, 1, 2], [0, 2, 3]]


def test_weights_are_found_in_cap4ds_folder_layout(tmp_path, monkeypatch):
    from headsplat.avatar.generators.cap4d import resolve_cap4d_weights

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.delenv("HEADSPLAT_CAP4D_WEIGHTS", raising=False)
    with pytest.raises(InputError, match="HEADSPLAT_CAP4D_WEIGHTS"):
        resolve_cap4d_weights(None)
    (tmp_path / "mmdm" / "checkpoints").mkdir(parents=True)
    ckpt = tmp_path / "mmdm" / "checkpoints" / "cap4d_mmdm_100k.ckpt"
    ckpt.write_bytes(b"x")
    assert resolve_cap4d_weights(tmp_path / "mmdm") == ckpt
    monkeypatch.setenv("HEADSPLAT_CAP4D_WEIGHTS", str(ckpt))
    assert resolve_cap4d_weights(None) == ckpt
    (tmp_path / "mmdm" / "other.ckpt").write_bytes(b"x")
    with pytest.raises(InputError, match="expected one .ckpt"):
        resolve_cap4d_weights(tmp_path / "mmdm")


def test_checkpoint_converted_once_to_safetensors_in_the_cache(tmp_path, monkeypatch):
    from headsplat.models.cap4d.model import MMDM, MMDMConfig, cache_folder

    monkeypatch.setenv("HEADSPLAT_CACHE_DIR", str(tmp_path / "cache"))
    m = MMDM(MMDMConfig.tiny())
    path = tmp_path / "tiny.ckpt"
    torch.save({"state_dict": m.state_dict(), "headsplat_config": m.cfg.to_dict()}, path)
    a = MMDM.from_pretrained(path, cache=True)
    cached = list((cache_folder() / "cap4d").glob("*.safetensors"))
    assert len(cached) == 1 and a.cfg == MMDMConfig.tiny()
    stamp = cached[0].stat().st_mtime_ns
    b = MMDM.from_pretrained(path, cache=True)  # read from the cache: the size comes with it
    assert cached[0].stat().st_mtime_ns == stamp and b.cfg == MMDMConfig.tiny()
    cached_state = b.state_dict()
    assert list(cached_state) == list(m.state_dict())
    for k, x in m.state_dict().items():
        assert torch.equal(x, cached_state[k]), k
    assert MMDMConfig.from_dict(MMDMConfig().to_dict()) == MMDMConfig()


def test_generate_refuses_bad_settings_before_any_work(tmp_path):
    from headsplat.avatar.generators.cap4d import generate_cap4d

    with pytest.raises(HeadsplatError, match="unknown preset 'huge'"):
        generate_cap4d([tmp_path / "x.png"], tmp_path / "v", preset="huge")
    with pytest.raises(HeadsplatError, match="divides 1000"):
        generate_cap4d([tmp_path / "x.png"], tmp_path / "v", steps=7)
