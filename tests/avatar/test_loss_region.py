"""The loss region of a fitting frame: the head's hull, and below the chin only the neck's own outline (the
shoulders and collar beside the neck are not the head's to paint)."""

import numpy as np
import torch

from headsplat.avatar.frames import below_chin, head_region
from headsplat.core.camera import Camera, intrinsics_from_fov, world_to_opencv
from headsplat.rig.open_rig import OpenRig


def _posed(rig, rotation):
    pose = (torch.zeros(rig.identity_shape), torch.tensor(1.0), torch.zeros(rig.n_expressions), rotation,
            torch.tensor([0.0, 0.0, -0.7]))
    with torch.no_grad():
        return rig(*pose).vertices, rig.landmarks(*pose)[rig.fit_points]


def test_below_chin_follows_the_head_and_the_neck_adds_only_its_outline():
    rig = OpenRig()
    cam = Camera(world_to_opencv(), intrinsics_from_fov(30.0, 256, 256), 256, 256)
    verts, lms = _posed(rig, torch.zeros(3))
    neck = below_chin(verts, lms, torch.zeros(3))
    chin_y = float(lms[:, 1].min())
    assert bool((verts[neck, 1] < chin_y - 0.01).all()) and bool((verts[~neck, 1] >= chin_y - 0.01).all())
    assert 0.02 < float(neck.float().mean()) < 0.4  # the neck stub, not the head
    # a nod forward: "below the chin" is along the head's own axis, so the same vertices stay the neck
    tilted_verts, tilted_lms = _posed(rig, torch.tensor([0.4, 0.0, 0.0]))
    assert torch.equal(below_chin(tilted_verts, tilted_lms, torch.tensor([0.4, 0.0, 0.0])), neck)
    old, new = head_region(verts, cam), head_region(verts, cam, neck=neck)
    assert bool((new <= old).all())  # never more than the hull of everything
    rows = np.arange(256)[:, None]
    low = rows > np.flatnonzero(new.any(1)).max() - 12  # the lowest rows of the region: the neck's base
    beside = (old > 0) & (new == 0) & low
    assert beside.sum() > 100  # the hull's corners beside the neck's base are gone
    face = head_region(verts[~neck], cam)
    assert bool((new[face > 0] > 0).all())  # the head's own hull is all kept
