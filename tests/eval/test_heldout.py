"""Held-out scoring against a generator's exact views (eval.novel_views.heldout_psnr): the relative pose rule, an
avatar fitted to an oracle's view set alone (``create --views`` with no photo) scored on other cameras and
expressions, and the score falling when the avatar is posed wrong."""

from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from headsplat.avatar.avatar import load_avatar
from headsplat.avatar.create import create_avatar, reference_view
from headsplat.avatar.oracle import oracle_views, with_hidden_pattern
from headsplat.avatar.viewset import read_view_set, write_view_set
from headsplat.core.rotation import axis_angle_to_matrix
from headsplat.eval.novel_views import heldout_psnr, relative_pose
from headsplat.rig.open_rig import OpenRig
from tests.avatar.test_many_views import TINY_MANY


def _avatar_at(expression, rotation, translation):
    return SimpleNamespace(expression=expression, rotation=rotation, translation=translation)  # what it reads


def test_relative_pose_gives_the_target_to_an_avatar_at_the_reference_and_composes_otherwise():
    g = torch.Generator().manual_seed(0)
    ref = (torch.randn(5, generator=g), torch.randn(3, generator=g) * 0.3, torch.tensor([0.0, 0.0, -0.6]))
    tgt = (torch.randn(5, generator=g), torch.randn(3, generator=g) * 0.3, torch.tensor([0.02, 0.01, -0.55]))
    e, r, t = relative_pose(_avatar_at(*ref), ref, tgt)
    for a, b in zip((e, r, t), tgt):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    # another avatar: the same turn about its own pivot, the same shift (as animation's relative rule)
    own = (torch.zeros(5), torch.tensor([0.0, 0.2, 0.0]), torch.tensor([0.0, 0.0, -0.8]))
    e, r, t = relative_pose(_avatar_at(*own), ref, tgt)
    torch.testing.assert_close(e, tgt[0] - ref[0])
    x = torch.tensor([0.03, -0.02, 0.05])
    at_ref = axis_angle_to_matrix(own[1]) @ x + own[2]
    moved = axis_angle_to_matrix(r) @ x + t
    motion = axis_angle_to_matrix(tgt[1]) @ axis_angle_to_matrix(ref[1]).T
    torch.testing.assert_close(moved, motion @ (at_ref - own[2]) + own[2] + tgt[2] - ref[2], atol=1e-5, rtol=0)
    # a head tracked 3% too large and too far (the same picture at the reference) stays the same picture turned
    s = 1.03
    big = (ref[0], ref[1], ref[2] * s)
    e, r, t = relative_pose(_avatar_at(*big), ref, (tgt[0], tgt[1], ref[2]))
    e0, r0, t0 = relative_pose(_avatar_at(*ref), ref, (tgt[0], tgt[1], ref[2]))
    p_big, p_true = axis_angle_to_matrix(r) @ (s * x) + t, axis_angle_to_matrix(r0) @ x + t0
    torch.testing.assert_close(p_big[:2] / p_big[2], p_true[:2] / p_true[2], atol=1e-6, rtol=0)


def test_reference_view_is_the_least_turned_head_at_the_first_expression_else_of_all():
    rot = np.array([[0, 0.5, 0], [0, 0.1, 0], [0, 0.0, 0], [0.2, 0, 0]])
    grid = SimpleNamespace(expression=np.array([[0.0, 0], [0, 0], [1, 0], [0, 0]]), rotation=rot)
    assert reference_view(grid) == 1  # view 2 is frontal but at another expression
    own = SimpleNamespace(expression=np.arange(8.0).reshape(4, 2), rotation=rot)  # each view its own
    assert reference_view(own) == 2


@pytest.fixture(scope="module")
def oracle_sets(astro_avatar, tmp_path_factory):
    rig = OpenRig()
    oracle = with_hidden_pattern(load_avatar(astro_avatar), rig)
    tmp = tmp_path_factory.mktemp("heldout")
    sets = []
    for name, yaws, pitches, expressions in (("train", (-50, -25, 0, 25, 50), (0,), ({}, {"jaw_open": 0.8})),
                                             ("held", (-40, 40), (8,), ({"jaw_open": 0.4},))):
        images, tracking = oracle_views(oracle, rig, yaws=yaws, pitches=pitches, expressions=expressions, size=128)
        sets.append(read_view_set(write_view_set(tmp / name, images, tracking, ["generated"] * len(images),
                                                 {"name": "oracle"})))
    return rig, sets[0], sets[1]


def test_an_avatar_of_the_views_alone_scores_on_held_out_views_and_a_wrong_pose_scores_less(oracle_sets):
    rig, train, held = oracle_sets
    ref = reference_view(train.tracking)
    assert ref == 2  # yaw 0, the first expression
    av = create_avatar([], [], train.tracking, rig, TINY_MANY, quiet=True, views=train)
    assert av.info["views"]["share"] == 1.0 and av.info["frames"] == []
    np.testing.assert_allclose(av.rotation.numpy(), train.tracking.rotation[ref], atol=1e-6)
    turned = replace(av, rotation=av.rotation + torch.tensor([0.0, np.radians(6), 0.0]))
    res = heldout_psnr({"views alone": av, "turned 6 degrees": turned}, held, ref, rig, train=train)
    print("held-out PSNR (dB):", {k: v["mean"] for k, v in res.items()})
    assert len(res["views alone"]["per_view"]) == len(held) == 2
    assert res["views alone"]["mean"] > 22.0
    assert res["views alone"]["mean"] > res["turned 6 degrees"]["mean"] + 3.0
    from PIL import Image

    rgb_only = held.folder / "rgb_only.png"  # a generator's view with no matte
    Image.fromarray(held.load(0)[0]).save(rgb_only)
    with pytest.raises(ValueError, match="matter"):
        heldout_psnr({"a": av}, replace(held, images=[rgb_only] * 2), ref, rig, train=train)
