"""Novel-view accuracy: each avatar rendered at head angles and expressions it was not fitted at, compared with a
known avatar's render of the same view (the oracle, :func:`novel_view_psnr`) or with a generator's own held-out
views, whose cameras and rig parameters are exact (:func:`heldout_psnr`)."""

from __future__ import annotations

import numpy as np
import torch

from headsplat.avatar.avatar import Avatar, pose_avatar
from headsplat.avatar.oracle import oracle_params, view_camera
from headsplat.core.rotation import axis_angle_to_matrix, matrix_to_axis_angle
from headsplat.eval import metrics as M
from headsplat.render.rasterize import render
from headsplat.rig.base import HeadRig


def render_views(avatar: Avatar, rig: HeadRig, expression: torch.Tensor, rotation: torch.Tensor,
                 translation: torch.Tensor, size: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(rgb (S, S, 3) float32 over black, alpha (S, S)) for each view's parameters ((T, E), (T, 3), (T, 3))."""
    cam, _, _ = view_camera(avatar, size)
    out = []
    with torch.no_grad():
        for t in range(len(expression)):
            r = render(pose_avatar(avatar, rig, expression[t], rotation[t], translation[t]), cam, background=0.0)
            out.append((r.rgb.numpy(), r.alpha[..., 0].numpy()))
    return out


def novel_view_psnr(avatars: dict, oracle: Avatar, rig: HeadRig, yaws=(-60, -45, 45, 60), pitches=(10,),
                    expressions=({},), size: int = 256) -> dict:
    """PSNR (dB) of each avatar against the oracle at every (yaw, pitch, expression), over the pixels either
    render covers (alpha > 0.05), both over black.

    Returns:
        {name: {"per_view": [psnr per view], "mean": mean, "views": [(yaw, pitch, expression index)]}}.
    """
    exp, rot, trans = oracle_params(oracle, rig, tuple(yaws), tuple(pitches), tuple(expressions))
    truth = render_views(oracle, rig, exp, rot, trans, size)
    labels = [(y, p, e) for e in range(len(expressions)) for p in pitches for y in yaws]
    result = {}
    for name, av in avatars.items():
        # the same head pose and expression offsets on the avatar's own reference expression
        own_exp = exp - oracle.expression + av.expression
        views = render_views(av, rig, own_exp, rot, trans, size)
        scores = [M.psnr(rgb, t_rgb, ((a > 0.05) | (t_a > 0.05)).astype(np.float32))
                  for (rgb, a), (t_rgb, t_a) in zip(views, truth)]
        result[name] = {"per_view": [round(s, 2) for s in scores], "mean": round(float(np.mean(scores)), 2),
                        "views": labels}
    return result


def relative_pose(avatar: Avatar, reference: tuple, target: tuple) -> tuple[torch.Tensor, ...]:
    """The avatar's expression, rotation and translation for a view: the view's head motion and expression
    change from ``reference`` to ``target`` (each (expression (E,), rotation (3,), translation (3,)) in one
    camera's frame) applied to the avatar's own reference parameters: the rotation change about the avatar's
    own head pivot (as animation's relative rule turns it; an avatar tracked a little too far and too large,
    which projects the same at its reference, still projects the same turned in place) and the whole
    translation change, depth included, added to its position (animation frames the driver's shift; the
    scorer needs the view's). An avatar whose reference is ``reference`` gets ``target`` exactly."""
    (e_f, r_f, t_f), (e_h, r_h, t_h) = reference, target
    rel = axis_angle_to_matrix(r_h.double()) @ axis_angle_to_matrix(r_f.double()).T
    rot = matrix_to_axis_angle(rel @ axis_angle_to_matrix(avatar.rotation.double())).float()
    trans = avatar.translation + (t_h - t_f).to(avatar.translation)
    return avatar.expression + (e_h - e_f), rot, trans


def heldout_psnr(avatars: dict, views, reference: int, rig: HeadRig, train=None, matter=None) -> dict:
    """PSNR (dB) of each avatar against the held-out views of a generator (its own renders at cameras and
    expressions no avatar was fitted to), every avatar posed relative to view ``reference`` of ``train`` (the
    training view set; default ``views`` itself) as :func:`relative_pose` says, rendered with the views'
    camera, both over black, over the pixels either covers (alpha > 0.05; a view's alpha is its file's, else
    ``matter``'s matte).

    Args:
        avatars: {name: Avatar}. views: the held-out :class:`~headsplat.avatar.viewset.ViewSet` (not cropped).

    Returns:
        {name: {"per_view": [psnr per view], "mean": mean}}.
    """
    if views.cropped:
        raise ValueError("heldout_psnr: a cropped view set (score its frames' crops instead)")
    train = views if train is None else train
    ref = tuple(torch.as_tensor(a[reference], dtype=torch.float32)
                for a in (train.tracking.expression, train.tracking.rotation, train.tracking.translation))
    cam = views.tracking.camera()
    truth = []
    for i in range(len(views)):
        rgb, alpha = views.load(i)
        if alpha is None:
            if matter is None:
                raise ValueError("heldout_psnr: views without alpha need a matter")
            alpha = matter(rgb)
        truth.append((rgb.astype(np.float32) / 255 * alpha[..., None], alpha))
    p = views.tracking.params()
    result = {}
    for name, av in avatars.items():
        scores = []
        with torch.no_grad():
            for i, (t_rgb, t_a) in enumerate(truth):
                e, r, t = relative_pose(av, ref, (p["expression"][i], p["rotation"][i], p["translation"][i]))
                out = render(pose_avatar(av, rig, e, r, t), cam, background=0.0)
                a = out.alpha[..., 0].numpy()
                scores.append(M.psnr(out.rgb.numpy(), t_rgb, ((a > 0.05) | (t_a > 0.05)).astype(np.float32)))
        result[name] = {"per_view": [round(s, 2) for s in scores], "mean": round(float(np.mean(scores)), 2)}
    return result
