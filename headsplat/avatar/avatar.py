"""The Avatar: rig identity, Gaussians bound to the rig's triangles, and the reference frame they were fitted
in. Saved as a versioned folder (``NAME.avatar/``) of JSON, safetensors and PNGs; loading runs no code.

    NAME.avatar/
      avatar.json            format, version, rig, size, expression names, provenance
      gaussians.safetensors  the bound GaussianSet (headsplat.splat.store)
      rig.safetensors        identity and the reference frame: expression, rotation, translation,
                             camera viewmat and K
      source.png             the reference crop (the background option "source")
      preview.png            the avatar rendered in its reference frame
      deformation.safetensors  optional: the expression-dependent deformation field (its config in
                             avatar.json's "deformation"), avatars made from many frames
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from safetensors.torch import save_file

from headsplat.core.camera import Camera
from headsplat.core.errors import InputError
from headsplat.core.fileio import atomic_dir, read_format_json
from headsplat.core.validate import read_safetensors
from headsplat.media.image import read_image_uint8, write_png
from headsplat.rig.base import HeadRig
from headsplat.rig.open_rig import VERSION as OPEN_RIG_VERSION
from headsplat.splat.binding import pose_gaussians
from headsplat.splat.deformation import ExpressionDeformation, deform, load_deformation, save_deformation
from headsplat.splat.gaussians import GaussianSet
from headsplat.splat.store import load_gaussians, save_gaussians

if TYPE_CHECKING:
    from headsplat.rig.flame.head import FlameHead

FORMAT = "headsplat.avatar"
VERSION = 2  # 2: FLAME avatars; "identity" replaces version 1's "identity_offsets"
RIGS = ("open", "flame")
_RIG_TENSORS = {"identity": None, "expression": (None,), "rotation": (3,), "translation": (3,),
                "viewmat": (4, 4), "K": (3, 3)}


@dataclass
class Avatar:
    """An animatable head.
    Attributes:
        rig: rig kind (``"open"`` or ``"flame"``).
        gaussians: Gaussians bound to ``avatar_triangles(rig)``.
        identity: the rig's identity: open (478, 3) face-vertex offsets in metres; FLAME (S,) shape coefficients.
        identity_scale: identity scale.
        expression_names: the rig's expression names.
        expression: (E,) expression of the reference frame.
        rotation: (3,) axis-angle head rotation of the reference frame.
        translation: (3,) head position of the reference frame, metres.
        camera: the reference crop camera (the default framing for rendering).
        source: (H, W, 3) uint8 reference crop.
        info: provenance and fit figures (JSON-serialisable).
    """
    rig: str
    gaussians: GaussianSet
    identity: torch.Tensor
    identity_scale: float
    expression_names: tuple
    expression: torch.Tensor
    rotation: torch.Tensor
    translation: torch.Tensor
    camera: Camera
    source: np.ndarray
    info: dict = field(default_factory=dict)
    rig_record: dict = field(default_factory=dict)  # FLAME: {"flame": {version, sha1, ...}} of the model file
    deformation: ExpressionDeformation | None = None  # expression-dependent offsets learned from many frames


def avatar_triangles(rig: HeadRig) -> torch.Tensor:
    """(F, 3) triangles avatars bind to: the rig's head triangles followed by its mouth cavity."""
    return torch.cat([rig.triangles, rig.mouth_triangles])


def posed_vertices(avatar: Avatar, rig: HeadRig, expression: torch.Tensor, rotation: torch.Tensor,
                   translation: torch.Tensor, offsets: torch.Tensor | None = None) -> torch.Tensor:
    """(..., V, 3) rig vertices of the avatar's identity for parameters with leading dims (...); ``offsets``
    (..., 478, 3): the open rig's free face offsets (see :meth:`OpenRig.forward`), None for none."""
    extra = {} if offsets is None else {"offsets": offsets}
    return rig(avatar.identity, torch.tensor(avatar.identity_scale), expression, rotation, translation,
               **extra).vertices


def pose_avatar(avatar: Avatar, rig: HeadRig, expression: torch.Tensor, rotation: torch.Tensor,
                translation: torch.Tensor, offsets: torch.Tensor | None = None) -> GaussianSet:
    """The avatar's Gaussians in world space for one frame: expression (E,), rotation (3,), translation (3,),
    the open rig's free face offsets (478, 3) or None."""
    verts = posed_vertices(avatar, rig, expression, rotation, translation, offsets)
    return pose_gaussians(expressed_gaussians(avatar, expression), verts, avatar_triangles(rig))


def expressed_gaussians(avatar: Avatar, expression: torch.Tensor) -> GaussianSet:
    """The avatar's bound Gaussians with its deformation field's offsets for ``expression`` (E,) (the
    Gaussians as fitted when it has none)."""
    if avatar.deformation is None:
        return avatar.gaussians
    return deform(avatar.gaussians, avatar.deformation, expression)


def save_avatar(avatar: Avatar, path: str | os.PathLike, preview: np.ndarray | None = None) -> Path:
    """Write ``avatar`` as a ``.avatar`` folder, atomically (a previous folder is replaced only when the new
    one is complete)."""
    path = Path(path)
    meta = {"format": FORMAT, "version": VERSION, "rig": avatar.rig, "identity_scale": avatar.identity_scale,
            "expression_names": list(avatar.expression_names), "width": avatar.camera.width,
            "height": avatar.camera.height, "n_gaussians": len(avatar.gaussians), "info": avatar.info,
            "rig_record": avatar.rig_record}
    if avatar.deformation is not None:
        meta["deformation"] = avatar.deformation.config()
    rig_tensors = {"identity": avatar.identity, "expression": avatar.expression,
                   "rotation": avatar.rotation, "translation": avatar.translation,
                   "viewmat": avatar.camera.viewmat, "K": avatar.camera.K}
    with atomic_dir(path) as tmp:
        (tmp / "avatar.json").write_text(json.dumps(meta, indent=1))
        save_gaussians(tmp / "gaussians.safetensors", avatar.gaussians, header={"rig": avatar.rig})
        save_file({k: v.detach().float().contiguous().cpu() for k, v in rig_tensors.items()},
                  str(tmp / "rig.safetensors"))
        write_png(tmp / "source.png", avatar.source)
        if preview is not None:
            write_png(tmp / "preview.png", preview)
        if avatar.deformation is not None:
            save_deformation(tmp / "deformation.safetensors", avatar.deformation)
    return path


def load_avatar(path: str | os.PathLike) -> Avatar:
    """Read a ``.avatar`` folder.
    Raises:
        InputError: missing, incomplete, truncated, not an avatar, or from a newer format version.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: avatar not found")
    if not p.is_dir():
        raise InputError(f"{p}: not an avatar (expected a .avatar folder written by `headsplat create`)")
    meta_path = p / "avatar.json"
    if not meta_path.is_file():
        raise InputError(f"{p}: not an avatar: avatar.json is missing")
    meta = read_format_json(meta_path, p, "avatar", FORMAT, VERSION)
    if meta.get("method", "headsplat") != "headsplat":
        raise InputError(f"{p}: made with --method {meta['method']}: this command needs an avatar of headsplat's "
                         "own Gaussians (animate, render and eval take both)")
    if meta.get("rig") not in RIGS:
        raise InputError(f"{p}: rig {meta.get('rig')!r} is not supported by this headsplat (supported: "
                         f"{', '.join(RIGS)})")
    for name in ("gaussians.safetensors", "rig.safetensors", "source.png"):
        if not (p / name).is_file():
            raise InputError(f"{p}: incomplete avatar: {name} is missing")
    gaussians, _ = load_gaussians(p / "gaussians.safetensors")
    t = read_safetensors(p / "rig.safetensors")
    if "identity" not in t and "identity_offsets" in t:  # version 1
        t["identity"] = t.pop("identity_offsets")
    for name, shape in _RIG_TENSORS.items():
        if name not in t:
            raise InputError(f"{p / 'rig.safetensors'}: missing tensor {name}")
        if shape is not None and (any(s is not None and s != a for s, a in zip(shape, t[name].shape))
                                  or len(shape) != t[name].dim()):
            raise InputError(f"{p / 'rig.safetensors'}: {name} has shape {tuple(t[name].shape)}, expected {shape}")
    if not gaussians.is_bound:
        raise InputError(f"{p / 'gaussians.safetensors'}: Gaussians are not bound to the rig")
    names = tuple(meta.get("expression_names", ()))
    if len(names) != t["expression"].shape[0]:
        raise InputError(f"{p}: {len(names)} expression names but {t['expression'].shape[0]} coefficients")
    camera = Camera(t["viewmat"], t["K"], int(meta["width"]), int(meta["height"]))
    deformation = None
    if "deformation" in meta:
        if meta["deformation"].get("kind") != "expression_basis":
            raise InputError(f"{p}: deformation field of kind {meta['deformation'].get('kind')!r} is not supported "
                             "by this headsplat; upgrade headsplat")
        if not (p / "deformation.safetensors").is_file():
            raise InputError(f"{p}: incomplete avatar: deformation.safetensors is missing")
        deformation = load_deformation(p / "deformation.safetensors", len(gaussians), len(names))
    return Avatar(rig=meta["rig"], gaussians=gaussians, identity=t["identity"],
                  identity_scale=float(meta["identity_scale"]), expression_names=names,
                  expression=t["expression"], rotation=t["rotation"], translation=t["translation"],
                  camera=camera, source=read_image_uint8(p / "source.png"), info=meta.get("info", {}),
                  rig_record=meta.get("rig_record", {}), deformation=deformation)


def check_flame_record(rig_record: dict, head: FlameHead, path: str | os.PathLike = "avatar") -> None:
    """Raise InputError when ``rig_record`` (an avatar's ``{"flame": ...}``) names another FLAME file than
    ``head``'s."""
    made, given = rig_record.get("flame", {}), head.describe()
    if made.get("sha1") and made.get("sha1") != given["sha1"]:
        raise InputError(f"{path}: made with another FLAME file ({made.get('version')}, sha1 {made.get('sha1')}) "
                         f"than {given['file']} ({given['version']}, sha1 {given['sha1']}); pass the same "
                         "file with --flame-model")


def check_rig_compatible(avatar: Avatar, rig: HeadRig, path: str | os.PathLike = "avatar") -> None:
    """Raise InputError when the avatar was bound to another rig: kind, FLAME model file, topology,
    expression set or identity size."""
    if avatar.rig != rig.kind:
        raise InputError(f"{path}: the avatar uses the {avatar.rig} rig, not {rig.kind}")
    name = "open rig" if rig.kind == "open" else "FLAME model"
    if rig.kind == "flame":
        check_flame_record(avatar.rig_record, rig, path)
    if rig.kind == "open":

        made = int(avatar.rig_record.get("open", {}).get("version", 1))
        if made != OPEN_RIG_VERSION:
            raise InputError(f"{path}: made with version {made} of the open rig, this headsplat has version "
                             f"{OPEN_RIG_VERSION} (eyeballs, teeth, 27 expressions); re-create the avatar")
    n_tris = len(avatar_triangles(rig))
    if int(avatar.gaussians.parent.max()) >= n_tris:
        raise InputError(f"{path}: Gaussians reference triangle {int(avatar.gaussians.parent.max())} but this "
                         f"headsplat's {name} has {n_tris}; re-create the avatar")
    if tuple(avatar.expression_names) != tuple(rig.expression_names):
        raise InputError(f"{path}: expression set differs from this headsplat's {name}; re-create the avatar")
    if tuple(avatar.identity.shape) != tuple(rig.identity_shape):
        raise InputError(f"{path}: identity of shape {tuple(avatar.identity.shape)}, this {name} takes "
                         f"{tuple(rig.identity_shape)}; re-create the avatar")
