"""Create an avatar: Gaussians bound to a head rig (open or FLAME), fitted to tracked photos through the rasterizer.

Steps: crop each frame around the head (the tracked crop, as a pinhole camera), matte it; seed Gaussians by
area on the rig (head and mouth cavity), move the shell's out to the person's silhouette in the first frame
(hair volume, head width), colour them from the photo; fit them with L1 + D-SSIM on
the matted foreground over random backgrounds, an alpha loss, and regularisers that keep them near their
triangles and small; then fill what no frame saw from its mirror image, its nearest seen neighbours, or far from
them the typical seen colour of its height (hair, collar). The mouth
interior keeps seeded colours: the photo's where a frame shows it (teeth in a smile), generic ones elsewhere
(dark cavity, teeth, gums, tongue); the teeth rows get a dense, even, opaque layer so that they read as rows.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F
from scipy.spatial import cKDTree
from tqdm import tqdm

from headsplat.avatar.avatar import Avatar, avatar_triangles
from headsplat.avatar.config import PRESETS, CreateConfig  # noqa: F401  (re-exported)
from headsplat.avatar.fit import fit_gaussians
from headsplat.avatar.frames import FitFrame, head_region, prepare_frame
from headsplat.avatar.losses import psnr
from headsplat.core.camera import project_points
from headsplat.core.errors import InputError
from headsplat.face.indices import eye_centres
from headsplat.face.segment import Matter
from headsplat.render.projection import camera_centre
from headsplat.render.rasterize import render
from headsplat.rig.base import HeadRig
from headsplat.rig.open_rig import CAVITY, GUMS, TEETH, TONGUE
from headsplat.splat.binding import (
    bind_points,
    init_by_area,
    per_triangle_barycentrics,
    pose_gaussians,
    triangle_frames,
)
from headsplat.splat.deformation import deform
from headsplat.splat.gaussians import SH_C0, GaussianSet, concatenate
from headsplat.track.tracker import rig_record
from headsplat.track.tracking import Tracking

MOUTH_RGB = {CAVITY: (0.12, 0.04, 0.04), TEETH: (0.88, 0.86, 0.8), TONGUE: (0.55, 0.24, 0.24),
             GUMS: (0.6, 0.3, 0.3)}
TEETH_PER_TRIANGLE = 16
EYE_PER_TRIANGLE = 9


def _sample(image: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """Bilinear samples (N, 3) of an (H, W, 3) image at pixel positions uv (N, 2) (centres at i + 0.5)."""
    h, w = image.shape[:2]
    grid = torch.stack([uv[:, 0] / w * 2 - 1, uv[:, 1] / h * 2 - 1], -1)[None, None]
    out = F.grid_sample(image.permute(2, 0, 1)[None], grid, align_corners=False, padding_mode="border")
    return out[0, :, 0].T


def visibility(gs: GaussianSet, frame: FitFrame, triangles: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Which Gaussians a frame sees (facing the camera, inside the image and the matte, not occluded), and
    where they land: (N,) bool and (N, 2) pixel positions."""
    cam = frame.camera
    with torch.no_grad():
        uv, z = project_points(gs.means, cam.viewmat, cam.K)
        normals = triangle_frames(frame.vertices, triangles).rotation[gs.parent, :, 2]
        facing = ((gs.means - camera_centre(cam.viewmat)) * normals).sum(-1) < 0
        inside = (z > 0) & (uv[:, 0] >= 0) & (uv[:, 0] < cam.width) & (uv[:, 1] >= 0) & (uv[:, 1] < cam.height)
        opaque = replace(gs, opacity_logits=torch.full_like(gs.opacity_logits, 4.0))
        depth = render(opaque, cam, backend="cpu").depth
        d_at = _sample(depth.expand(-1, -1, 3), uv)[:, 0]
        m_at = _sample(frame.matte[..., None].expand(-1, -1, 3), uv)[:, 0]
        unoccluded = z < d_at + 0.01
    return facing & inside & unoccluded & (m_at > 0.9), uv


def fill_unseen(gs: GaussianSet, seen: torch.Tensor, canonical: torch.Tensor, part: torch.Tensor,
                hair_line: float, mirror_radius: float = 0.012, smooth_k: int = 64, smooth_radius: float = 0.01,
                near: float = 0.02, fade: float = 0.04, band: float = 0.04, nape_drop: float = 0.06
                ) -> GaussianSet:
    """Give Gaussians no frame saw the colour of seen ones: their mirror image across the face's symmetry
    plane (x = 0 in head space) when one lies within ``mirror_radius``; else a blend of the ``smooth_k`` nearest
    seen Gaussians of the same region (face; the rest of the head), Gaussian-weighted over ``smooth_radius``
    plus half the distance to the nearest (the farther from what was seen, the wider the average), turning
    beyond ``near`` metres from it (smoothly, over ``fade``) into the region's typical colour: the median of
    its seen colours, for the head taken separately above and below the hair line (``hair_line``, dropping by
    ``nape_drop`` behind the ears) and blended over a ``band`` around it (hair on the scalp, skin or collar
    below). So the back of the head is one smooth colour that meets the seen sides without seams or specks,
    whatever the photo's edge looked like. Mouth Gaussians keep their generic interior.

    Args:
        gs: N Gaussians. seen: (N,) bool. canonical: (N, 3) positions in the neutral head space.
        part: (N,) 0 face, 1 shell, 2 mouth.
        hair_line: head-space height above which the shell counts as scalp.
    """
    sh = gs.sh.detach().clone()
    pts = canonical.detach().numpy()
    # Height above the hair line, which drops towards the nape behind the ears (hair covers the back of the head
    # lower than its sides).
    behind = (-canonical[:, 2].detach() / 0.08).clamp(0, 1)
    height = canonical[:, 1].detach() - (hair_line - nape_drop * behind * behind * (3 - 2 * behind))
    for region in (part == 0, part == 1):
        src = np.flatnonzero((seen & region).numpy())
        dst = np.flatnonzero((~seen & region).numpy())
        if len(src) == 0 or len(dst) == 0:
            continue
        tree = cKDTree(pts[src])
        d_m, i_m = tree.query(pts[dst] * np.array([-1.0, 1.0, 1.0]))
        k = min(smooth_k, len(src))
        d_n, i_n = tree.query(pts[dst], k=k)
        d_n, i_n = d_n.reshape(len(dst), k), i_n.reshape(len(dst), k)
        sigma = smooth_radius + 0.5 * d_n[:, :1]
        w = np.exp(-0.5 * ((d_n - d_n[:, :1]) / sigma) ** 2)
        w = torch.from_numpy(w / w.sum(1, keepdims=True)).to(sh.dtype)
        blended = (w[..., None, None] * sh[src[i_n]]).sum(1)
        above = (height[src] > 0).numpy()
        whole = sh[src].median(0).values
        high = sh[src[above]].median(0).values if above.any() else whole
        low = sh[src[~above]].median(0).values if (~above).any() else whole
        s = (height[dst] / band + 0.5).clamp(0, 1)
        s = (s * s * (3 - 2 * s)).to(sh.dtype)[:, None, None]
        typical = low * (1 - s) + high * s
        far = np.clip((d_n[:, 0] - near) / fade, 0, 1)
        far = torch.from_numpy(far * far * (3 - 2 * far)).to(sh.dtype)[:, None, None]
        blended = (1 - far) * blended + far * typical
        mirror = torch.from_numpy(d_m < mirror_radius)
        sh[dst] = torch.where(mirror[:, None, None], sh[src[i_m]], blended)
    return replace(gs, sh=sh)


def hair_line(rig: HeadRig) -> float:
    """Head-space height of the scalp's lower edge: 2 cm below the eyes of the neutral template (hair
usually covers the sides of the head down to the ears)."""

    right, left = eye_centres(rig.neutral_landmarks().numpy())
    return float(right[1] + left[1]) / 2 - 0.02


def silhouette_gap(matte: np.ndarray, hull: np.ndarray, centre: np.ndarray, n_angles: int = 120,
                   max_ratio: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """How far the person's silhouette reaches beyond the rig's, around the head: along rays from ``centre``
    (pixels), the distance from where the rig's projected outline ``hull`` (H, W) bool ends to where the
    ``matte`` (H, W) ends (0 where the rig reaches further; at most ``max_ratio`` of the rig's radius),
    smoothed over neighbouring rays.

    Returns:
        angles (n_angles,) radians (image x right, y down) and gaps (n_angles,) pixels.
    """
    h, w = matte.shape
    angles = np.linspace(-np.pi, np.pi, n_angles, endpoint=False)
    r = np.arange(0, 2 * max(h, w), dtype=np.float64)

    def reach(mask):
        out = np.zeros(n_angles)
        for k, a in enumerate(angles):
            x = centre[0] + r * np.cos(a) - 0.5
            y = centre[1] + r * np.sin(a) - 0.5
            ok = (x >= 0) & (x < w - 1) & (y >= 0) & (y < h - 1)
            xs, ys = np.round(x[ok]).astype(int), np.round(y[ok]).astype(int)
            inside = mask[ys, xs]
            out[k] = r[ok][np.argmin(inside)] if not inside.all() else r[ok][-1]  # the first step outside
        return out

    rig_r = reach(hull)
    gap = np.clip(reach(matte > 0.5) - rig_r, 0, max_ratio * rig_r)
    kernel = np.ones(7) / 7
    gap = np.convolve(np.concatenate([gap[-3:], gap, gap[:3]]), kernel, mode="valid")
    return angles, gap


def fit_shell_to_silhouette(gs: GaussianSet, part: torch.Tensor, frame: FitFrame, triangles: torch.Tensor,
                            translation: torch.Tensor, face_margin: float = 0.02) -> GaussianSet:
    """Move the Gaussians of the head's shell (part 1) out to the person's silhouette in a reference frame:
    hair volume and head width from the matte. In each direction around the head (in the image, up and sideways;
    not down, where the neck and shoulders are) the whole shell moves outwards, perpendicular to the view, by
    how far the matte reaches beyond the rig there, so that the head keeps that width and height from every
    side. Shell Gaussians within ``face_margin`` metres of the face move less (the face is fitted as it is).

    Args:
        gs: seeded Gaussians bound to ``triangles`` posed as ``frame.vertices``. part: (N,) 0 face, 1 shell,
            2 mouth. translation: (3,) the head's centre in world space.
    """
    cam = frame.camera
    shell = part == 1
    if not shell.any():
        return gs
    with torch.no_grad():
        hull = head_region(frame.vertices, cam, grow=0.0) > 0
        c_uv, c_z = project_points(translation.double()[None], cam.viewmat.double(), cam.K.double())
        centre, depth = c_uv[0].numpy(), float(c_z[0])
        angles, gap = silhouette_gap(frame.matte.numpy(), hull, centre)
        uv, _ = project_points(gs.means.double(), cam.viewmat.double(), cam.K.double())
        d = uv.numpy() - centre
        phi = np.arctan2(d[:, 1], d[:, 0])
        g = np.interp(phi, angles, gap, period=2 * np.pi)
        # not downwards (image y down): full weight up to 30 degrees below the horizontal, none beyond 60
        down = np.sin(phi)
        t = np.clip((np.sin(np.radians(60)) - down) / (np.sin(np.radians(60)) - np.sin(np.radians(30))), 0, 1)
        g = g * t * t * (3 - 2 * t)
        # less next to the face
        face_pts = gs.means[part == 0].double().numpy()
        if len(face_pts):
            dist, _ = cKDTree(face_pts).query(gs.means.double().numpy())
            g = g * np.clip(dist / face_margin, 0, 1)
        g = np.where(shell.numpy(), g, 0.0)
        metres = torch.from_numpy(g * depth / float(cam.K[0, 0]))
        R = cam.viewmat[:3, :3].double()
        direction = torch.from_numpy(np.cos(phi))[:, None] * R[0] + torch.from_numpy(np.sin(phi))[:, None] * R[1]
        offset = (metres[:, None] * direction).to(gs.means.dtype)
        fr = triangle_frames(frame.vertices, triangles)
        rot, scale = fr.rotation[gs.parent], fr.scale[gs.parent, None]
        local = gs.local_means + (rot.transpose(-1, -2) @ offset[..., None])[..., 0] / scale
    moved = replace(gs, local_means=local)
    return pose_gaussians(moved, frame.vertices, triangles)


def seed_gaussians(frames: list[FitFrame], rig: HeadRig, cfg: CreateConfig, generator: torch.Generator
                   ) -> tuple[GaussianSet, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gaussians by area on the avatar triangles, coloured from the frames. Returns the set, which
    Gaussians some frame saw, their neutral head-space positions and their part (0 face, 1 shell, 2 mouth)."""
    tris = avatar_triangles(rig)
    ref = frames[0]
    gs = init_by_area(ref.vertices, tris, cfg.n_gaussians, generator=generator, opacity=0.9, coverage=0.8)
    n_head = len(rig.triangles)
    # Dense, even, opaque layers: the teeth (by area they would get a few scattered Gaussians and show the
    # cavity between them), the eyeballs (they, not the lids, paint the iris and whites) and the eye rims (small
    # Gaussians that cover the lids without reaching over the opening).
    layers = ((n_head + torch.nonzero(rig.mouth_material == TEETH)[:, 0], TEETH_PER_TRIANGLE),
              (torch.nonzero(rig.eyeball_triangles | rig.eye_rims)[:, 0], EYE_PER_TRIANGLE))
    for sel, k in layers:
        if len(sel):
            gs = concatenate([gs, bind_points(ref.vertices, tris, sel.repeat_interleave(k),
                                              per_triangle_barycentrics(k).repeat(len(sel), 1), opacity=0.99,
                                              size=0.7 / math.sqrt(k), flatness=0.3)])
    part = rig.triangle_parts()[gs.parent]
    gs = fit_shell_to_silhouette(gs, part, ref, tris, ref.translation)
    rgb = torch.full((len(gs), 3), 0.5)
    seen = torch.zeros(len(gs), dtype=torch.bool)
    for f in frames:
        vis, uv = visibility(gs, f, tris)
        new = vis & ~seen
        rgb[new] = _sample(f.image, uv[new])
        seen |= new
    # The mouth interior no frame shows gets a generic one (dark cavity, teeth, tongue); what a photo shows
    # (teeth in a smile) takes the photo's colours.
    hidden_mouth = (part == 2) & ~seen
    material = rig.mouth_material[(gs.parent - n_head).clamp_min(0)]
    for kind, colour in MOUTH_RGB.items():
        rgb[hidden_mouth & (material == kind)] = torch.tensor(colour)
    gs = replace(gs, sh=((rgb - 0.5) / SH_C0)[:, None, :].contiguous())
    with torch.no_grad():
        neutral = rig(torch.zeros(rig.identity_shape), torch.tensor(1.0), torch.zeros(rig.n_expressions),
                      torch.zeros(3), torch.zeros(3)).vertices
        canonical = pose_gaussians(gs, neutral, tris).means
    return fill_unseen(gs, seen, canonical, part, hair_line(rig)), seen, canonical, part


def create_avatar(images, indices: list[int], tracking: Tracking, rig: HeadRig, cfg: CreateConfig = CreateConfig(),
                  seed: int = 0, quiet: bool = False, matter=None, provenance: dict | None = None,
                  device: torch.device | str = "cpu", views=None, views_share: float = 0.5) -> Avatar:
    """Fit an avatar to reference frames (and to a generator's views).
    Args:
        images: (H, W, 3) uint8 frames, a list or any iterable yielding them in the order of ``indices`` (each
            is cropped as it comes: only the first is kept whole); ``indices`` their frame indices in
            ``tracking``. The first is the avatar's reference frame. Empty with ``views``: the views alone
            (``tracking``: theirs; the reference frame: :func:`reference_view`; real views or not, every step is
            on them).
        tracking: the tracked sequence (shared identity, per-frame pose and expression, crops).
        rig: the head rig the tracking was made with (open or FLAME).
        cfg: fitting settings.
        seed: seeds every random choice; the same seed and thread count give the same avatar.
        matter: a foreground matter (default: MediaPipe's selfie segmentation).
        provenance: recorded in the avatar's info.
        device: where the fit runs (seeding and the result stay on the CPU).
        views: a :class:`~headsplat.avatar.viewset.ViewSet` to fit as well (its real views count as real frames).
        views_share: the share of the fitting steps spent on its generated views, in (0, 1); the real frames
            share the rest.
    """
    if tracking.rig != rig.kind:
        raise ValueError(f"the tracking was made with the {tracking.rig} rig, not {rig.kind}")
    if views is not None:
        check_views(views, rig)
        if not 0 < views_share < 1:
            raise ValueError(f"views_share must be between 0 and 1, got {views_share}")
    t0 = time.perf_counter()
    generator = torch.Generator().manual_seed(seed)
    own_matter = matter is None
    if own_matter:
        matter = Matter(device=torch.device(device).type)
    try:
        frames, reference = [], None
        bar = tqdm(total=len(indices) + (len(views) if views is not None else 0), desc="preparing frames",
                   unit="frame", disable=quiet, leave=False)
        for img, t in zip(images, indices):
            if reference is None:
                reference = prepare_frame(img, t, tracking, rig, cfg.output_size, matter)
            frames.append(prepare_frame(img, t, tracking, rig, cfg.size, matter))
            bar.update()
        if not frames and views is None:
            raise ValueError("create_avatar: no frames given")
        if views is not None:
            n_gen = sum(k == "generated" for k in views.kinds)
            n_real = len(frames) + len(views) - n_gen
            order = list(range(len(views)))
            if not frames:  # the views alone: the most frontal one is the reference
                first = reference_view(views.tracking)
                order = [first] + [i for i in order if i != first]
                img, matte = views.load(first)
                reference = prepare_frame(img, first, views.tracking, rig, cfg.output_size, matter, matte=matte,
                                          kind=views.kinds[first], cropped=views.cropped)
                tracking = views.tracking
                if n_real == 0:
                    views_share = 1.0
            for i in order:
                img, matte = views.load(i)
                kind = views.kinds[i]
                weight = (1 - views_share) / n_real if kind == "real" else views_share / n_gen
                frames.append(prepare_frame(img, i, views.tracking, rig, cfg.size, matter, matte=matte, kind=kind,
                                            weight=weight, cropped=views.cropped))
                bar.update()
            for i in range(len(frames) - len(views)):
                frames[i] = replace(frames[i], weight=(1 - views_share) / n_real)
        bar.close()
        stages = {"prepare frames": time.perf_counter() - t0}
        return _create(frames, reference, tracking, rig, cfg, seed, quiet, provenance, device, generator, t0,
                       views, views_share, stages)
    finally:
        if own_matter:
            matter.close()


def reference_view(tracking: Tracking) -> int:
    """The view an avatar made from views alone is framed by: the least rotated head at the first view's
    expression (the first such view); where no other view has that expression (a generator that labels each
    view with its own, as CAP4D's), the least rotated head of all."""
    same = np.abs(tracking.expression - tracking.expression[:1]).max(1) < 1e-6
    if same.sum() == 1:
        same[:] = True
    angle = np.where(same, np.linalg.norm(tracking.rotation, axis=1), np.inf)
    return int(np.argmin(angle))


def check_views(views, rig: HeadRig) -> None:
    """Raise InputError when a view set's parameters do not belong to ``rig``."""
    tr = views.tracking
    if tr.rig != rig.kind:
        raise InputError(f"{views.folder}: views made for the {tr.rig} rig, not {rig.kind}")
    if tuple(tr.expression_names) != tuple(rig.expression_names):
        raise InputError(f"{views.folder}: the views' expression set differs from this headsplat's {rig.kind} rig "
                         "(made by another version?); generate them again")
    if tuple(np.shape(tr.identity)) != tuple(rig.identity_shape):
        raise InputError(f"{views.folder}: identity of shape {np.shape(tr.identity)}, the {rig.kind} rig takes "
                         f"{tuple(rig.identity_shape)}")


def _posed(gs: GaussianSet, field, f: FitFrame, tris: torch.Tensor) -> GaussianSet:
    """Gaussians posed in frame ``f`` (with the deformation field's offsets for its expression)."""
    return pose_gaussians(gs if field is None else deform(gs, field, f.expression), f.vertices, tris)


def _create(frames, reference, tracking, rig: HeadRig, cfg, seed, quiet, provenance, device, generator, t0, views,
            views_share, stages: dict) -> Avatar:
    lap = time.perf_counter()

    def stage(name: str) -> None:  # seconds since the previous stage ended, under ``name``
        nonlocal lap
        now = time.perf_counter()
        stages[name] = now - lap
        lap = now

    seeded, seen, canonical, part = seed_gaussians(frames, rig, cfg, generator)
    stage("seed")
    # The mouth interior keeps its seeded colours (the photo's where a frame shows it, generic elsewhere):
    # fitted, its few, often half-hidden Gaussians take the colours of the random backgrounds. Nor may it
    # grow (see fit_gaussians' ``interior``).
    mouth = part == 2
    device = torch.device(device)
    if device.type != "cpu":
        res = fit_gaussians(seeded.to(device), [f.to(device) for f in frames], rig.to(device), cfg, generator,
                            quiet=quiet, interior=mouth).to("cpu")
        rig = rig.to("cpu")
    else:
        res = fit_gaussians(seeded, frames, rig, cfg, generator, quiet=quiet, interior=mouth)
    gs, field, origin = res.gaussians, res.deformation, res.origin
    stage("fit")
    # Per-frame corrections: the refined parameters are the frames' own from here on.
    c = res.corrections
    frames = [replace(f, expression=f.expression + c["expression"][i], rotation=f.rotation + c["rotation"][i],
                      translation=f.translation + c["translation"][i]) if f.kind == "real" else f
              for i, f in enumerate(frames)]
    if res.stats.get("refined_frames"):
        with torch.no_grad():
            frames = [replace(f, vertices=rig(f.identity, f.scale, f.expression, f.rotation, f.translation).vertices)
                      for f in frames]
    # What no frame saw takes the photo colour of its mirror image or nearest seen neighbours (colours sampled
    # from the photo, not fitted ones: a fitted Gaussian at the silhouette may have drifted towards the
    # random backgrounds it was fitted over).
    filled = fill_unseen(seeded, seen, canonical, part, hair_line(rig)).sh[origin]
    filled = torch.cat([filled, torch.zeros(len(gs), gs.sh.shape[1] - 1, 3)], 1)
    # ... unless the fit moved it into view: then its fitted colour is what the frames show there.
    tris = avatar_triangles(rig)
    part = part[origin]
    seen_now = seen[origin].clone()
    for f in frames:
        seen_now |= visibility(_posed(gs, field, f, tris), f, tris)[0]
    gs = replace(gs, sh=torch.where(seen_now[:, None, None] | (part == 2)[:, None, None], gs.sh, filled))
    stage("visibility and fill")
    with torch.no_grad():
        scores = []
        for f in frames:
            out = render(_posed(gs, field, f, tris), f.camera, background=0.0)
            scores.append(psnr(out.rgb, f.image * f.matte[..., None], f.mask * f.matte))
        ref = frames[0]
        gs = pose_gaussians(gs, ref.vertices, tris)
        # The reference frame at the avatar's own framing (output size): its camera and crop are the
        # avatar's, and the fit is measured there too, comparable across presets.
        full = replace(reference, expression=ref.expression, rotation=ref.rotation, translation=ref.translation,
                       vertices=ref.vertices)
        out = render(_posed(gs, field, full, tris), full.camera, background=0.0)
        score = psnr(out.rgb, full.image * full.matte[..., None], full.mask * full.matte)
    stage("scores")
    cam = full.camera
    source = (full.image * 255).round().to(torch.uint8).numpy()
    n_source = len(frames) - (len(views) if views is not None else 0)  # the source's frames come first
    real = range(n_source)
    info = dict(provenance or {})
    info.update(seed=seed, preset_size=cfg.size, iterations=res.stats["iterations"], n_gaussians=len(gs),
                frames=[int(frames[i].index) for i in real], fit_psnr_foreground=[round(scores[i], 2) for i in real],
                psnr_foreground=round(score, 2),
                final_loss=round(res.losses[-1], 5) if res.losses else None,
                seen_share=round(float(seen.float().mean()), 3), fit=res.stats,
                seconds=round(time.perf_counter() - t0, 1),
                stages_s={k: round(v, 1) for k, v in stages.items()})
    if views is not None:
        info["views"] = {"folder": str(views.folder), "generator": views.generator.get("name"),
                         "generated": sum(k == "generated" for k in views.kinds),
                         "real": sum(k == "real" for k in views.kinds), "share": views_share,
                         "fit_psnr_foreground_mean": round(float(np.mean(scores[n_source:])), 2)}
    return Avatar(rig=rig.kind, gaussians=gs, identity=torch.from_numpy(tracking.identity).float(),
                  identity_scale=float(tracking.identity_scale), expression_names=tuple(rig.expression_names),
                  expression=ref.expression, rotation=ref.rotation, translation=ref.translation, camera=cam,
                  source=source, info=info, rig_record=rig_record(rig), deformation=field)
