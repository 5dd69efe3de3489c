import pytest
import torch

from headsplat.core.camera import Camera, intrinsics_from_fov, look_at, project_points, world_to_opencv
from headsplat.core.errors import ShapeError


def test_point_on_axis_projects_to_image_centre_and_pixel_centres():
    K = intrinsics_from_fov(60.0, 64, 48)
    uv, z = project_points(torch.tensor([[0.0, 0.0, -2.0]]), world_to_opencv(), K)
    # The centre of a 64x48 image is at (32, 24): pixel (31, 23)'s centre is at 31.5, 23.5.
    assert torch.allclose(uv, torch.tensor([[32.0, 24.0]])) and z.item() == pytest.approx(2.0)


def test_world_up_is_image_up_and_world_x_is_image_right():
    K = intrinsics_from_fov(60.0, 64, 64)
    uv, _ = project_points(torch.tensor([[0.1, 0.2, -2.0]]), world_to_opencv(), K)
    assert uv[0, 0] > 32 and uv[0, 1] < 32


def test_look_at_matches_world_to_opencv_from_plus_z():
    view = look_at(torch.tensor([0.0, 0.0, 1.0]), torch.tensor([0.0, 0.0, 0.0]))
    expect = world_to_opencv()
    expect[2, 3] = 1.0
    assert torch.allclose(view, expect, atol=1e-6)


def test_camera_checks_shapes():
    with pytest.raises(ShapeError, match=r"viewmat: expected shape \(4, 4\), got \(3, 4\)"):
        Camera(torch.zeros(3, 4), torch.eye(3), 10, 10)
