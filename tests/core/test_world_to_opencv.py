"""The world-to-OpenCV flip is defined once (core.camera.world_to_opencv); the modules that use it as a (3,)
sign vector or a (3, 3) matrix derive theirs from it, with the same float64 values as the literals they replaced."""

import numpy as np
import torch

from headsplat.core.camera import world_to_opencv
from headsplat.models.cap4d import views as cap4d_views
from headsplat.models.gagavatar import inputs as gaga_inputs
from headsplat.track import fit, offsets


def test_world_to_opencv_flips_y_and_z():
    assert torch.equal(world_to_opencv(), torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0])))


def test_every_module_uses_the_same_flip():
    signs = np.array([1.0, -1.0, -1.0])
    assert fit.FLIP.dtype == torch.float64 and np.array_equal(fit.FLIP.numpy(), signs)
    assert offsets.FLIP.dtype == np.float64 and np.array_equal(offsets.FLIP, signs)
    gaga = gaga_inputs._CV_FROM_WORLD
    assert gaga.dtype == torch.float64 and np.array_equal(gaga.numpy(), signs)
    assert cap4d_views.OPENCV.dtype == np.float64 and np.array_equal(cap4d_views.OPENCV, np.diag(signs))


def test_posed_to_opencv_keeps_the_input_dtype():
    x = torch.tensor([[0.1, 0.2, -0.3]], dtype=torch.float32)
    out = gaga_inputs.posed_to_opencv(x, torch.tensor(1.0), torch.zeros(3), torch.zeros(3))
    assert out.dtype == torch.float32 and torch.equal(out, torch.tensor([[0.1, -0.2, 0.3]]))
