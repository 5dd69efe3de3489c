"""The mouth and eyes of an avatar made from one photo: the opening between the lips is filled (teeth, cavity,
tongue) at full jaw opening from -45 to 45 degrees without showing through the skin around it, the teeth rows
are continuous, and blinks close the eyes."""

import math

import torch

from headsplat.avatar.animate import offset_motion, render_avatar_frame, straight_rgb8
from headsplat.avatar.avatar import posed_vertices
from headsplat.avatar.methods.fitted import load_fitted
from headsplat.core.rotation import euler_yxz_to_matrix
from headsplat.eval.metrics import eye_opening
from headsplat.eval.mouth import interior_leak_at, open_mouth_views, row_gaps, teeth_row_line


def _frame(av, rig, controls: dict, yaw_deg: float = 0.0):
    e = torch.zeros(1, len(rig.expression_names))
    for k, x in controls.items():
        e[0, rig.expression_names.index(k)] = x
    turn = euler_yxz_to_matrix(torch.tensor([math.radians(yaw_deg)]), torch.zeros(1), torch.zeros(1))
    m = offset_motion(av, e, turn)
    out = render_avatar_frame(av, rig, m, 0, av.camera, width=av.camera.width, height=av.camera.height)
    verts = posed_vertices(av, rig, m.expression[0], m.rotation[0], m.translation[0])
    return out, verts


def test_open_mouth_has_no_hole_no_leak_and_continuous_teeth_from_minus_45_to_45_degrees(astro_avatar):
    av, rig = load_fitted(astro_avatar, None)
    for yaw in (-45.0, -20.0, 0.0, 20.0, 45.0):
        views = open_mouth_views(av, rig, yaw)
        inside = views["opening"]
        assert inside.sum() > 200, yaw  # the mouth is open
        alpha = views["render"].alpha[..., 0].numpy()[inside]
        leak = interior_leak_at(views)
        print(f"yaw {yaw:+.0f}: mouth opening {inside.sum()} px, alpha min {alpha.min():.3f} mean {alpha.mean():.4f}, "
              f"interior showing through the skin on {leak:.2%} of the head")
        # No hole: the 3DGS compositing rule (each Gaussian at most 0.99; stop before the transmittance falls
        # below 1e-4) gives a pixel under any number of opaque layers an alpha of exactly 0.99, and a few
        # covered pixels land a little under it (measured 0.9896-0.993); a missing layer reads below 0.9.
        assert alpha.min() >= 0.985, yaw
        # When the mouth interior's Gaussians could grow in the fit (filling the skin's alpha from behind), the
        # tongue and gums showed through the chin and cheeks as red smears: 0.6-1.6 % of the head (now < 0.1 %).
        assert leak < 0.003, yaw
    out, verts = _frame(av, rig, {"jaw_open": 1.0})
    rgb = straight_rgb8(out.rgb, out.alpha)
    for upper in (True, False):
        gaps = row_gaps(rgb, teeth_row_line(rig, verts, av.camera, upper))
        print(f"{'upper' if upper else 'lower'} teeth row: {gaps:.1%} dark samples")
        assert gaps < 0.05


def test_a_blink_closes_the_avatars_eyes_in_the_rendered_image(astro_avatar):
    from headsplat.face.landmarks import LandmarkDetector

    av, rig = load_fitted(astro_avatar, None)
    with LandmarkDetector() as det:
        opening = []
        for blink in (0.0, 1.0):
            out, _ = _frame(av, rig, {"blink_left": blink, "blink_right": blink})
            lm = det(straight_rgb8(out.rgb, out.alpha))
            assert lm is not None
            opening.append(float(eye_opening(lm.points[None])[0]))
    print(f"eye opening read by MediaPipe on the render: open {opening[0]:.3f}, blink {opening[1]:.3f}")
    # MediaPipe never reads a closed eye as closed: on the textured rig with lids that meet it reads 0.43 of
    # the open gap; on this avatar 0.65 (0.75 before the eyes' dense layers, when the lid rims carried the
    # iris down; version 1 of the rig, eyes fanned shut: 1.0, no change at all).
    assert opening[1] < 0.7 * opening[0]
