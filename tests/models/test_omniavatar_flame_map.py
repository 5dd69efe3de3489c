"""Where FLAME sits in OmniAvatar's world (headsplat.models.omniavatar.flame_map): the similarity recovered from a
prior SDF that is the exact signed distance to a FLAME-layout head placed by a known similarity, a FLAME of
another template or expression basis told apart by its residual, and the views' head poses, which must project
FLAME's vertices where the network's cameras see the aligned head."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from headsplat.avatar.generators.omniavatar import RMS_WARN_MM, flame_vertices
from headsplat.avatar.viewset import generated_tracking
from headsplat.core.camera import project_points
from headsplat.core.rotation import axis_angle_to_matrix
from headsplat.models.omniavatar import look_at_camera
from headsplat.models.omniavatar.flame_map import FlameAlignment, align_flame, head_pose, vertex_normals
from headsplat.models.omniavatar.model import FFHQ_3DMM_FOCAL
from headsplat.rig.flame.head import eyeball_vertices
from headsplat.rig.flame.loader import load_flame_file
from headsplat.rig.flame.model import FlameRig

BOX = torch.tensor([[-0.45, -0.5, -0.45], [0.45, 0.5, 0.55]])
TRUE = dict(scale=2.1, rotation=torch.tensor([0.05, -0.03, 0.02]), offset=torch.tensor([0.01, 0.05, -0.02]))


def analytic_prior(rig: FlameRig, scale: float, rotation: torch.Tensor, offset: torch.Tensor):
    """``prior_sdf(points (R, K, 3), controls (R, 206)) -> (R, K)``: the signed distance (world units, point to
    the tangent plane of the nearest vertex) to ``rig``'s head under each row's controls, placed by the
    similarity; eyeballs left out, as the network's head prior has none."""
    rot = axis_angle_to_matrix(rotation.double())
    keep = torch.from_numpy(~eyeball_vertices(rig))

    def prior_sdf(points, controls):
        with torch.no_grad():
            v = flame_vertices(rig, controls.detach().cpu().numpy()).double()
            n = vertex_normals(v, rig.triangles.long())
        wv, wn = (scale * v @ rot.T + offset.double())[:, keep], (n @ rot.T)[:, keep]
        p = points.double()
        i = torch.cdist(p.detach(), wv).argmin(-1)[..., None].expand(-1, -1, 3)
        near, normal = torch.gather(wv, 1, i), torch.gather(wn, 1, i)
        return ((p - near) * normal).sum(-1).to(points.dtype)

    return prior_sdf


@pytest.fixture(scope="module")
def rig(flame_head_file):
    return FlameRig.from_file(flame_head_file, n_shape=100, n_expr=100)


def _controls(rows: int = 2, seed: int = 0) -> np.ndarray:
    g = np.random.default_rng(seed)
    c = np.zeros((rows, 206), np.float32)
    c[:, :20] = g.normal(scale=0.5, size=(rows, 20))
    c[:, 100:140] = g.normal(scale=1.0, size=(rows, 40))
    c[0, 203] = 0.15  # the jaw open in the first row
    return c


def _align(rig_of_sdf, rig_fitted, controls):
    sdf = analytic_prior(rig_of_sdf, **TRUE)
    ctrl = torch.from_numpy(controls)
    with torch.no_grad():
        v = flame_vertices(rig_fitted, controls)
        n = vertex_normals(v, rig_fitted.triangles.long())
    keep = torch.from_numpy(~eyeball_vertices(rig_fitted))
    return align_flame(lambda pts: sdf(pts, ctrl), v[:, keep], n[:, keep], BOX)


def test_align_flame_recovers_the_similarity_of_the_prior(rig):
    a = _align(rig, rig, _controls())
    assert abs(a.scale / TRUE["scale"] - 1) < 2e-3
    rel = a.rotation.T @ axis_angle_to_matrix(TRUE["rotation"].double()).numpy()
    assert np.degrees(np.arccos(np.clip((np.trace(rel) - 1) / 2, -1, 1))) < 0.5
    np.testing.assert_allclose(a.offset, TRUE["offset"].numpy(), atol=1e-3)
    assert a.rms_mm < 0.3 and a.offset_rms_mm < 2.0
    assert set(a.as_dict()) == {"scale", "rotation", "offset", "rms_mm", "offset_rms_mm"}


def test_another_flame_template_or_expression_basis_leaves_a_residual_above_the_warning(flame_head_file, rig):
    data = load_flame_file(flame_head_file, n_shape=100, n_expr=100)
    stretched = FlameRig(replace(data, v_template=data.v_template * np.array([1.0, 1.1, 0.92], np.float32)))
    perm = np.random.default_rng(1).permutation(100)
    shuffled = FlameRig(replace(data, exprdirs=data.exprdirs[..., perm].copy()))
    right = _align(rig, rig, _controls()).rms_mm
    for other in (stretched, shuffled):
        wrong = _align(rig, other, _controls()).rms_mm
        assert wrong > RMS_WARN_MM > 4 * right, (wrong, right)


def test_head_pose_projects_flame_where_the_network_camera_sees_the_aligned_head(rig):
    a = FlameAlignment(scale=2.4, rotation=axis_angle_to_matrix(torch.tensor([0.1, -0.2, 0.05])).numpy(),
                       offset=np.array([0.02, -0.03, 0.1]), rms_mm=0.0, offset_rms_mm=0.0)
    with torch.no_grad():
        v = flame_vertices(rig, _controls(1))[0]
    size = 64
    K = torch.tensor([[FFHQ_3DMM_FOCAL * size, 0, size / 2], [0, FFHQ_3DMM_FOCAL * size, size / 2], [0, 0, 1]],
                     dtype=torch.float64)
    for yaw, pitch in ((0.0, 0.0), (0.6, -0.2), (-0.9, 0.3)):
        cam = look_at_camera(np.pi / 2 + yaw, np.pi / 2 - pitch, [0, 0, 0.2], 2.7)[0].double()
        want, _ = project_points(a.world(v.double()), torch.linalg.inv(cam), K)
        rot, trans = head_pose(cam.numpy(), a)
        tr = generated_tracking("flame", size, size, FFHQ_3DMM_FOCAL * size, np.zeros(100), 1.0, ("e",),
                                rot[None], trans[None], np.zeros((1, 1)), "test", {})
        posed = v.double() @ axis_angle_to_matrix(torch.from_numpy(rot)).T + torch.from_numpy(trans)
        c = tr.camera(torch.float64)
        got, _ = project_points(posed, c.viewmat, c.K)
        assert (got - want).abs().max() < 1e-3, (yaw, pitch)
