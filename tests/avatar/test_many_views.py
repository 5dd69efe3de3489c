"""Many-view fitting: frame selection, view sets, the oracle generator, density control, the deformation field,
per-frame corrections, and create --views raising novel-view accuracy."""

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from headsplat.avatar.avatar import load_avatar, save_avatar
from headsplat.avatar.config import CreateConfig
from headsplat.avatar.create import create_avatar
from headsplat.avatar.frames import select_frames
from headsplat.avatar.oracle import oracle_views, with_hidden_pattern
from headsplat.avatar.viewset import read_view_set, write_view_set
from headsplat.core.errors import InputError
from headsplat.eval.novel_views import novel_view_psnr
from headsplat.splat.deformation import deform, load_deformation, new_deformation, save_deformation
from headsplat.splat.density import DensityConfig, GradientStats, plan_density, reindex_adam
from headsplat.track.tracking import Tracking

TINY_MANY = CreateConfig(size=96, n_gaussians=3000, iterations=60, iterations_per_frame=10, max_iterations=300,
                         density=DensityConfig(every=40, max_gaussians=8000), deformation_rank=4,
                         deformation_hidden=8)


def _tracking(rotation, expression, names=None) -> Tracking:
    t = len(rotation)
    e = expression.shape[1]
    return Tracking(rig="open", width=64, height=64, fps=25.0, focal=60.0, identity=np.zeros((478, 3), np.float32),
                    identity_scale=1.0, expression_names=tuple(names or [f"e{i}" for i in range(e)]),
                    rotation=rotation.astype(np.float32), translation=np.tile([0, 0, -0.5], (t, 1)).astype(np.float32),
                    expression=expression.astype(np.float32), landmarks=np.full((t, 478, 3), np.nan, np.float32),
                    found=np.ones(t, bool), fit_error=np.zeros(t, np.float32),
                    crops=np.tile(np.eye(2, 3), (t, 1, 1)), crop_size=64, times=np.arange(t) / 25.0)


def test_frame_selection_covers_poses_and_expressions():
    t = 200
    yaw = np.radians(30) * np.sin(np.linspace(0, 2 * np.pi, t))  # a slow turn left and right
    rot = np.stack([np.zeros(t), yaw, np.zeros(t)], 1)
    exp = np.zeros((t, 3))
    exp[120:124, 1] = 1.0  # one blink
    tr = _tracking(rot, exp)
    tr.found[:5] = False
    chosen = select_frames(tr, 60)
    assert chosen[0] == 5 and chosen == [5] + sorted(chosen[1:])  # the first frame with a face, then in order
    assert len(chosen) < 60  # a calm clip needs fewer than the cap
    assert any(120 <= c < 124 for c in chosen)  # the blink is not missed
    yaws = yaw[chosen]
    assert yaws.max() > np.radians(27) and yaws.min() < np.radians(-27)  # both extremes of the turn
    # every frame within one unit (6 degrees / 0.2 of a coefficient) of a chosen one
    feats = np.concatenate([rot / np.radians(6), exp / 0.2], 1)
    d = np.linalg.norm(feats[5:, None] - feats[None, chosen], axis=-1).min(1)
    assert d.max() <= 1.0
    assert len(select_frames(tr, 7)) == 7
    assert select_frames(tr, 60, within=range(100, 150))[0] == 100


def test_density_plan_clones_splits_prunes_and_keeps_adam_moments():
    n = 6
    quats = torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1)
    log_scales = torch.log(torch.tensor([0.1, 0.1, 1.0, 1.0, 0.1, 5.0]))[:, None].repeat(1, 3)
    opacity = torch.tensor([2.0, 2.0, 2.0, 2.0, -8.0, 2.0])  # 4 is transparent, 5 oversized
    grad = torch.tensor([1e-3, 0.0, 1e-3, 0.0, 1e-3, 1e-3])
    cfg = DensityConfig(grad_threshold=2e-4, split_size=0.5, prune_opacity=0.005, prune_size=4.0)
    plan = plan_density(quats, log_scales, opacity, grad, cfg, generator=torch.Generator().manual_seed(0))
    src = plan.source.tolist()
    assert src[:3] == [0, 1, 3]  # kept: 2 was split, 4 and 5 pruned
    assert src[3:] == [0, 2, 2]  # a clone of 0, two children of 2
    assert plan.fresh.tolist() == [False] * 3 + [True] * 3
    assert torch.allclose(plan.log_scale_delta[4:], torch.full((2,), -np.log(1.6)))
    assert plan.local_offset[:4].abs().max() == 0 and plan.local_offset[4:].abs().max() > 0
    # can_grow and the budget
    held = plan_density(quats, log_scales, opacity, grad, cfg, can_grow=torch.tensor([False] * 6))
    assert held.source.tolist() == [0, 1, 2, 3]
    capped = plan_density(quats, log_scales, opacity, grad, replace(cfg, max_gaussians=5))
    assert len(capped) == 5
    # Adam's moments follow their rows; fresh rows start at zero
    p = torch.arange(n, dtype=torch.float32)[:, None].clone().requires_grad_(True)
    opt = torch.optim.Adam([p], lr=0.1)
    p.grad = torch.ones_like(p)
    opt.step()
    new = plan.take(p.detach()).requires_grad_(True)
    reindex_adam(opt, p, new, plan)
    st = opt.state[new]
    assert st["exp_avg"].shape == (6, 1) and opt.param_groups[0]["params"][0] is new
    assert torch.all(st["exp_avg"][:3] > 0) and torch.all(st["exp_avg"][3:] == 0)


def test_density_grows_where_detail_is_missing_and_prunes_transparent():
    """Gaussians on a plane fitted to an image that is detailed on the left and flat on the right: the
    accumulated view-space gradients make the left half grow; Gaussians made transparent are pruned."""
    from headsplat.core.camera import Camera, intrinsics_from_focal, world_to_opencv
    from headsplat.render.rasterize import render
    from headsplat.splat.binding import bound_to_world, init_per_triangle, triangle_frames

    verts = torch.tensor([[-0.1, -0.1, -0.5], [0.1, -0.1, -0.5], [0.1, 0.1, -0.5], [-0.1, 0.1, -0.5]])
    tris = torch.tensor([[0, 1, 2], [0, 2, 3]])
    gs = init_per_triangle(verts, tris, k=100, opacity=0.8, size=0.15)
    fr = triangle_frames(verts, tris)
    s = 64
    cam = Camera(world_to_opencv(), intrinsics_from_focal(torch.tensor(160.0), s, s), s, s)
    yy, xx = np.mgrid[0:s, 0:s]
    target = np.where(xx < s // 2, ((xx // 6 + yy // 6) % 2).astype(np.float32), 0.5)
    target = torch.from_numpy(np.repeat(target[..., None], 3, 2))
    P = {k: getattr(gs, k).clone().requires_grad_(True) for k in ("local_means", "local_quats", "local_log_scales",
                                                                  "opacity_logits", "sh")}
    P["opacity_logits"].data[:10] = -9.0  # ten transparent ones
    opt = torch.optim.Adam([{"params": [v]} for v in P.values()], lr=0.01)
    stats = GradientStats(len(gs))
    parent = gs.parent
    for it in range(120):
        m, q, ls = bound_to_world(parent, P["local_means"], P["local_quats"], P["local_log_scales"], fr)
        from headsplat.splat.gaussians import GaussianSet
        out = render(GaussianSet(m, q, ls, P["opacity_logits"], P["sh"]), cam)
        out.means2d.retain_grad()
        loss = (out.rgb - target).abs().mean()
        opt.zero_grad()
        loss.backward()
        if it >= 60:  # once the flat half has converged, as 3DGS starts densifying after a warm-up
            stats.add(out.means2d.grad, out.visible, s, s)
        opt.step()
    grad = stats.mean()
    plan = plan_density(P["local_quats"], P["local_log_scales"], P["opacity_logits"], grad,
                        DensityConfig(grad_threshold=float(grad.quantile(0.75))))
    means = bound_to_world(parent, P["local_means"], P["local_quats"], P["local_log_scales"], fr)[0].detach()
    new_x = means[plan.source[plan.fresh], 0]
    print(f"density: {int(plan.fresh.sum())} new Gaussians, {int((new_x < 0).sum())} in the detailed half")
    assert (new_x < 0).float().mean() > 0.75  # growth where the detail is
    kept = set(plan.source[~plan.fresh].tolist())
    assert not kept & set(range(10))  # the transparent ones are gone


def test_deformation_field_round_trip_and_strict_loading(tmp_path):
    from headsplat.splat.binding import init_per_triangle

    verts = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0]])
    gs = init_per_triangle(verts, torch.tensor([[0, 1, 2]]), k=5)
    field = new_deformation(5, 3, rank=2, hidden=4, generator=torch.Generator().manual_seed(0))
    e = torch.tensor([0.5, -1.0, 2.0])
    same = deform(gs, field, e)  # zero bases: nothing moves
    assert torch.equal(same.local_means, gs.local_means) and torch.equal(same.sh, gs.sh)
    field.basis.normal_()
    moved = deform(gs, field, e)
    assert not torch.allclose(moved.local_means, gs.local_means)
    assert torch.allclose(deform(gs, field, torch.zeros(3)).local_means, gs.local_means)  # neutral: none
    save_deformation(tmp_path / "d.safetensors", field)
    back = load_deformation(tmp_path / "d.safetensors", 5, 3)
    assert torch.equal(deform(gs, back, e).local_means, moved.local_means)
    with pytest.raises(InputError, match="5 Gaussians and 3 expression inputs"):
        load_deformation(tmp_path / "d.safetensors", 6, 3)
    from safetensors.torch import save_file
    t = {k: v for k, v in field.tensors().items() if k != "w2"}
    t["extra"] = torch.zeros(1)
    save_file(t, str(tmp_path / "bad.safetensors"))
    with pytest.raises(InputError, match=r"missing tensors \['w2'\] / unexpected \['extra'\]"):
        load_deformation(tmp_path / "bad.safetensors", 5, 3)
    t = {k: v for k, v in field.tensors().items() if k != "high"}
    save_file(t, str(tmp_path / "half.safetensors"))
    with pytest.raises(InputError, match=r"missing tensors \['high'\]"):
        load_deformation(tmp_path / "half.safetensors", 5, 3)


def test_deformation_field_holds_its_offsets_beyond_the_expressions_it_was_fitted_on(tmp_path):
    from safetensors.torch import save_file

    from headsplat.splat.binding import init_per_triangle
    from headsplat.splat.deformation import expression_range

    verts = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0]])
    gs = init_per_triangle(verts, torch.tensor([[0, 1, 2]]), k=5)
    seen = torch.tensor([[0.1, -0.2, 0.0], [0.4, 0.3, -0.5], [0.2, 0.1, 0.3]])
    low, high = expression_range(seen)
    assert torch.equal(low, torch.tensor([0.0, -0.2, -0.5])) and torch.equal(high, torch.tensor([0.4, 0.3, 0.3]))
    field = new_deformation(5, 3, rank=2, hidden=4, generator=torch.Generator().manual_seed(0), expressions=seen)
    field.basis.normal_()
    inside = torch.tensor([0.3, -0.1, 0.2])
    edge = torch.tensor([0.4, -0.1, 0.2])
    beyond = torch.tensor([2.5, -0.1, 0.2])  # a jaw far wider than any fitted frame's
    unbounded = replace(field, low=torch.full((3,), -math.inf), high=torch.full((3,), math.inf))
    d = {name: deform(gs, f, e).local_means - gs.local_means
         for name, f, e in (("inside", field, inside), ("edge", field, edge), ("beyond", field, beyond),
                            ("free inside", unbounded, inside), ("free beyond", unbounded, beyond))}
    assert torch.equal(d["inside"], d["free inside"])  # within the range nothing changes
    assert torch.equal(d["beyond"], d["edge"])  # beyond it, the offsets of its edge
    assert d["free beyond"].norm() > 2 * d["edge"].norm()  # what the network alone would have extrapolated
    save_deformation(tmp_path / "d.safetensors", field)
    back = load_deformation(tmp_path / "d.safetensors", 5, 3)
    assert torch.equal(back.low, low) and torch.equal(back.high, high)
    old = {k: v for k, v in field.tensors().items() if k not in ("low", "high")}  # saved before ranges
    save_file(old, str(tmp_path / "old.safetensors"))
    assert torch.equal(load_deformation(tmp_path / "old.safetensors", 5, 3).high, torch.full((3,), math.inf))
    with pytest.raises(ValueError, match="must include the neutral expression"):
        replace(field, low=torch.tensor([0.1, -0.2, -0.5]))


def test_view_set_round_trip_and_errors(tmp_path):
    rot = np.zeros((2, 3))
    tr = _tracking(rot, np.zeros((2, 2)))
    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[..., 3] = 255
    rgba[10:20, 10:20, 0] = 200
    write_view_set(tmp_path / "v", [rgba, rgba[..., :3].copy()], tr, ["real", "generated"], {"name": "test"})
    vs = read_view_set(tmp_path / "v")
    assert vs.kinds == ["real", "generated"] and vs.generator["name"] == "test" and len(vs) == 2
    img, matte = vs.load(0)
    assert img.shape == (64, 64, 3) and img[15, 15, 0] == 200 and matte is not None and matte.min() == 1.0
    assert vs.load(1)[1] is None
    with pytest.raises(InputError, match="not a view set"):
        read_view_set(tmp_path / "nothing")
    (tmp_path / "v" / "000001.png").unlink()
    with pytest.raises(InputError, match=r"missing view image\(s\) \['000001.png'\]"):
        read_view_set(tmp_path / "v")
    with pytest.raises(ValueError, match="view kinds"):
        write_view_set(tmp_path / "w", [rgba, rgba], tr, ["real", "imagined"], {})
    assert not (tmp_path / "w").exists()


@pytest.fixture(scope="module")
def oracle_setup(astro_avatar, tmp_path_factory):
    """The session's astronaut avatar with stripes painted where its photo cannot see (the oracle), its views
    at four head yaws, and the astronaut photo tracked."""
    from skimage import data

    from headsplat.rig.open_rig import OpenRig
    from headsplat.track.arrays import track_images

    rig = OpenRig()
    oracle = with_hidden_pattern(load_avatar(astro_avatar), rig)
    images, tracking = oracle_views(oracle, rig, yaws=(-70, -50, -30, 30, 50, 70), pitches=(0,),
                                    expressions=({}, {"jaw_open": 0.8}), size=160)
    folder = write_view_set(tmp_path_factory.mktemp("views") / "views", images, tracking,
                            ["generated"] * len(images), {"name": "oracle"})
    img = data.astronaut()
    return rig, oracle, read_view_set(folder), img, track_images([img], rig, True)


def test_oracle_views_raise_novel_view_accuracy(oracle_setup, tmp_path):
    rig, oracle, views, img, tr = oracle_setup
    alone = create_avatar([img], [0], tr, rig, TINY_MANY, quiet=True)
    both = create_avatar([img], [0], tr, rig, TINY_MANY, quiet=True, views=views, views_share=0.5)
    assert both.info["views"]["generated"] == 12 and both.info["fit"]["density_control"]
    assert both.info["fit"]["added"] > 0 and both.deformation is not None
    res = novel_view_psnr({"photo": alone, "photo + views": both}, oracle, rig, yaws=(-60, -45, 45, 60),
                          pitches=(10,), size=160)
    print("novel views vs the oracle (PSNR dB):", {k: v["mean"] for k, v in res.items()})
    assert res["photo + views"]["mean"] > res["photo"]["mean"] + 2.0
    # the field is saved with the avatar and read back
    save_avatar(both, tmp_path / "both.avatar")
    back = load_avatar(tmp_path / "both.avatar")
    assert torch.equal(back.deformation.basis, both.deformation.basis)


def test_views_of_another_rig_are_refused(oracle_setup, tmp_path):
    from headsplat.avatar.create import check_views

    rig, _, views, _, _ = oracle_setup
    other = replace(views, tracking=replace(views.tracking, expression_names=("a", "b")))
    with pytest.raises(InputError, match="expression set differs"):
        check_views(other, rig)


def test_per_frame_corrections_undo_tracking_noise(oracle_setup):
    """Views of the oracle taken as real frames with their head yaw mis-tracked by a known +-2.5 degrees: the
    per-frame corrections move each back (sign and size)."""
    from headsplat.avatar.create import seed_gaussians
    from headsplat.avatar.fit import fit_gaussians
    from headsplat.avatar.frames import prepare_frame

    rig, _, views, _, _ = oracle_setup
    n = len(views)
    noise = np.radians(2.5) * np.where(np.arange(n) % 2 == 0, 1.0, -1.0)
    rot = views.tracking.rotation.copy()
    rot[:, 1] += noise
    tr = replace(views.tracking, rotation=rot)
    frames = []
    for i in range(n):
        img, matte = views.load(i)
        frames.append(prepare_frame(img, i, tr, rig, 96, matte=matte, kind="real"))
    cfg = replace(TINY_MANY, iterations_per_frame=25, max_iterations=300, deformation_rank=0, density=replace(
        TINY_MANY.density, start=1.0))
    g = torch.Generator().manual_seed(0)
    gs, _, _, part = seed_gaussians(frames, rig, cfg, g)
    res = fit_gaussians(gs, frames, rig, cfg, g, quiet=True, interior=part == 2)
    assert res.stats["refined_frames"] == n
    dyaw = res.corrections["rotation"][:, 1].numpy()
    print("yaw corrections (deg):", np.round(np.degrees(dyaw), 2), "noise:", np.round(np.degrees(noise), 2))
    assert np.mean(np.sign(dyaw) == -np.sign(noise)) >= 0.8
    assert np.corrcoef(dyaw, noise)[0, 1] < -0.7


def test_deformation_field_reproduces_held_out_expressions(astro_avatar, oracle_setup):
    """An oracle whose lower face darkens with jaw opening: fitted to its views with and without the field,
    scored at jaw openings it was not fitted at."""
    from headsplat.avatar.oracle import with_jaw_shading

    rig, _, _, img, tr = oracle_setup
    truth = with_jaw_shading(load_avatar(astro_avatar), rig, colour=(-1.0, -1.2, -1.2))
    images, tracking = oracle_views(truth, rig, yaws=(-25, 25), pitches=(0,),
                                    expressions=({}, {"jaw_open": 0.3}, {"jaw_open": 0.7}, {"jaw_open": 1.0}),
                                    size=128)
    from headsplat.avatar.viewset import ViewSet

    class Memory(ViewSet):  # the same views without a folder
        def load(self, i):
            return images[i][..., :3].copy(), images[i][..., 3].astype(np.float32) / 255

    views = Memory(folder=None, tracking=tracking, images=[None] * len(images), kinds=["generated"] * len(images),
                   generator={"name": "oracle"})
    cfg = replace(TINY_MANY, iterations_per_frame=25, max_iterations=200, deformation_rank=4, lr_deformation=0.01,
                  density=replace(TINY_MANY.density, start=1.0))
    fits = {label: create_avatar([img], [0], tr, rig, c, quiet=True, views=views, views_share=0.8)
            for label, c in (("field", cfg), ("none", replace(cfg, deformation_rank=0)))}
    res = novel_view_psnr(fits, truth, rig, yaws=(-15, 15), pitches=(0,), expressions=({"jaw_open": 0.5},
                                                                                        {"jaw_open": 0.85}), size=96)
    print("held-out jaw openings (PSNR dB):", {k: v["mean"] for k, v in res.items()})
    assert res["field"]["mean"] > res["none"]["mean"] + 1.0
