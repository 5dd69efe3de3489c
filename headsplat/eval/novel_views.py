"""Novel-view accuracy against a known avatar (the oracle): each avatar rendered at head angles and expressions
it was not fitted at, compared with the oracle's render of the same view."""

from __future__ import annotations

import numpy as np
import torch

from headsplat.avatar.avatar import Avatar, pose_avatar
from headsplat.avatar.oracle import oracle_params, view_camera
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
