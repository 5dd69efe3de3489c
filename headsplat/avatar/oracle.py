"""The oracle generator: views of a known avatar at many head poses and expressions, written as a view set.

It stands in for a learned generator (CAP4D, GAGAvatar) wherever the truth must be known: the views are
exact renders, so an avatar fitted to them can be scored against the oracle's own renders of new views.
"""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import torch

from headsplat.avatar.animate import straight_rgb8
from headsplat.avatar.avatar import Avatar, avatar_triangles, pose_avatar, posed_vertices
from headsplat.avatar.viewset import generated_tracking
from headsplat.core.camera import Camera, intrinsics_from_focal, world_to_opencv
from headsplat.core.rotation import euler_yxz_to_matrix, matrix_to_axis_angle
from headsplat.render.projection import camera_centre
from headsplat.render.rasterize import render
from headsplat.rig.base import HeadRig
from headsplat.rig.controls import controls_to_params
from headsplat.splat.binding import pose_gaussians, triangle_frames
from headsplat.splat.deformation import ExpressionDeformation
from headsplat.splat.gaussians import SH_C0
from headsplat.track.tracking import Tracking

# Expressions the oracle shows by default (named controls; each relative to the avatar's own expression).
ORACLE_EXPRESSIONS = ({}, {"jaw_open": 0.7}, {"smile": 0.8}, {"blink_left": 1.0, "blink_right": 1.0},
                      {"brows_up": 0.9})


def view_camera(avatar: Avatar, size: int | None = None) -> tuple[Camera, float, float]:
    """The oracle's camera: at the origin, principal point at the centre, the avatar's focal length (scaled to
    ``size`` px, default the avatar's framing). Returns the camera, its focal length in pixels and the head's
    distance (the avatar's reference distance)."""
    size = int(size or avatar.camera.width)
    focal = float(avatar.camera.K[0, 0]) * size / avatar.camera.width
    K = intrinsics_from_focal(torch.tensor(focal, dtype=torch.float64), size, size).float()
    return Camera(world_to_opencv(), K, size, size), focal, float(avatar.translation.norm())


def oracle_params(avatar: Avatar, rig: HeadRig, yaws: tuple, pitches: tuple, expressions: tuple
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every (yaw, pitch, expression) combination: expression (T, E), rotation (T, 3), translation (T, 3)
    (the head straight ahead of the camera at the avatar's distance). Yaw and pitch in degrees, absolute."""
    combos = list(itertools.product(expressions, pitches, yaws))
    n = len(combos)
    names = list(rig.expression_names)
    exp = torch.stack([avatar.expression + controls_to_params(c, names, 1)[0][0] for c, _, _ in combos])
    yaw = torch.deg2rad(torch.tensor([y for _, _, y in combos], dtype=torch.float32))
    pitch = torch.deg2rad(torch.tensor([p for _, p, _ in combos], dtype=torch.float32))
    rot = matrix_to_axis_angle(euler_yxz_to_matrix(yaw, pitch, torch.zeros(n)))
    trans = torch.tensor([0.0, 0.0, -float(avatar.translation.norm())]).expand(n, 3).clone()
    return exp, rot, trans


def oracle_views(avatar: Avatar, rig: HeadRig, yaws=(-60, -45, -30, -15, 0, 15, 30, 45, 60), pitches=(-20, 0, 20),
                 expressions=ORACLE_EXPRESSIONS, size: int | None = None) -> tuple[list[np.ndarray], Tracking]:
    """Render the avatar at every combination of head yaw, pitch (degrees) and expression (named controls).
    Returns:
        RGBA uint8 views (alpha: the render's coverage) and their :class:`Tracking` (the avatar's identity,
        each view's parameters, the whole image as the crop).
    """
    cam, focal, _ = view_camera(avatar, size)
    exp, rot, trans = oracle_params(avatar, rig, tuple(yaws), tuple(pitches), tuple(expressions))
    images = []
    with torch.no_grad():
        for t in range(len(exp)):
            out = render(pose_avatar(avatar, rig, exp[t], rot[t], trans[t]), cam, background=0.0)
            alpha = (out.alpha[..., 0].clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy()
            images.append(np.dstack([straight_rgb8(out.rgb, out.alpha), alpha]))
    s = cam.width
    tracking = generated_tracking(rig.kind, s, s, focal, avatar.identity.numpy(), avatar.identity_scale,
                                  rig.expression_names, rot.numpy(), trans.numpy(), exp.numpy(), "oracle",
                                  avatar.rig_record)
    return images, tracking


def with_hidden_pattern(avatar: Avatar, rig: HeadRig, period: float = 0.02, amplitude: float = 0.25,
                        facing: float = 0.2) -> Avatar:
    """An oracle that knows more than its photo: the avatar with horizontal stripes (``period`` metres,
    ± ``amplitude`` in colour) painted on every Gaussian whose triangle does not face its reference camera
    (normal · direction to the camera below ``facing``: the sides, back and under the chin). A one-photo avatar
    cannot guess them; views of the oracle show them."""

    gs = avatar.gaussians
    with torch.no_grad():
        verts = posed_vertices(avatar, rig, avatar.expression, avatar.rotation, avatar.translation)
        fr = triangle_frames(verts, avatar_triangles(rig))
        normal = fr.rotation[gs.parent, :, 2]
        local = (fr.rotation[gs.parent] @ gs.local_means[..., None])[..., 0]
        means = fr.origin[gs.parent] + fr.scale[gs.parent, None] * local
        to_cam = camera_centre(avatar.camera.viewmat) - means
        cos = (normal * to_cam).sum(-1) / to_cam.norm(dim=-1)
        hidden = cos < facing
        stripe = torch.sign(torch.sin(2 * np.pi * means[:, 1] / period))
        sh = gs.sh.clone()
        rgb = (sh[:, 0] * SH_C0 + 0.5 + amplitude * stripe[:, None]).clamp(0, 1)
        sh[hidden, 0] = (rgb[hidden] - 0.5) / SH_C0
    return replace(avatar, gaussians=replace(gs, sh=sh))


def with_jaw_shading(avatar: Avatar, rig: HeadRig, colour=(-0.5, -0.7, -0.7), share: float = 0.35) -> Avatar:
    """An oracle with a known expression-dependent appearance: the lower ``share`` of the face (by height in the
    neutral head) darkens with jaw opening (a deformation field whose code is ``silu(4 * jaw_open)``, adding
    ``colour`` in degree-0 SH units, about -0.15..-0.2 in RGB at full opening). Needs a rig with ``jaw_open``."""

    names = list(rig.expression_names)
    if "jaw_open" not in names:
        raise ValueError(f"the {rig.kind} rig has no jaw_open coefficient")
    e = len(names)
    w1 = torch.zeros(1, e)
    w1[0, names.index("jaw_open")] = 4.0
    gs = avatar.gaussians
    with torch.no_grad():
        neutral = posed_vertices(avatar, rig, torch.zeros(e), torch.zeros(3), torch.zeros(3))
        canon = pose_gaussians(gs, neutral, avatar_triangles(rig)).means
    face = rig.triangle_parts()[gs.parent] == 0
    lower = face & (canon[:, 1] < canon[face, 1].quantile(share))
    basis = torch.zeros(len(gs), 1, 6)
    basis[lower, 0, 3:] = torch.tensor(colour)
    return replace(avatar, deformation=ExpressionDeformation(w1, torch.zeros(1), torch.ones(1, 1), torch.zeros(1),
                                                              basis))
