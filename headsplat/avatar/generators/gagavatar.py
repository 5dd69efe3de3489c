"""The ``gagavatar`` generator: views of the person in one photo (or a GAGAvatar ``.avatar``) rendered by GAGAvatar
at a grid of head poses and expressions, with their FLAME parameters and cameras, for
``create PHOTO --views VIEWS --rig flame``."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import torch
from tqdm import tqdm

from headsplat.avatar.gagavatar import render_views
from headsplat.avatar.generators import PITCHES, SIZE, YAWS, Generator, register_generator
from headsplat.avatar.methods.gagavatar import avatar_or_photo, gagavatar_weights, turned_transform
from headsplat.avatar.options import DEVICE, FLAME_MODEL, WEIGHTS
from headsplat.avatar.viewset import generated_tracking, write_view_set
from headsplat.core.errors import HeadsplatError
from headsplat.core.validate import check_device
from headsplat.models.gagavatar.inputs import view_to_tracking

# the expressions of the generated views: (name, change to the source's expression)
GENERATED_EXPRESSIONS = ("source", "jaw open", "expr_000 +2", "expr_001 +2")


def expression_variants(expression: torch.Tensor, names: tuple, which=GENERATED_EXPRESSIONS) -> torch.Tensor:
    """(len(which), E) the source expression and named changes of it: "jaw open" (0.3 rad), "expr_NNN +v"."""
    out = []
    for w in which:
        e = expression.clone()
        if w == "jaw open":
            e[names.index("jaw_rx")] += 0.3
        elif w != "source":
            name, value = w.split()
            if name not in names:
                raise HeadsplatError(f"unknown expression coefficient {name!r}")
            e[names.index(name)] += float(value)
        out.append(e)
    return torch.stack(out)


@register_generator
class GagavatarGenerator(Generator):
    name = "gagavatar"
    summary = "GAGAvatar's renders of one photo at a grid of head poses and expressions (--weights)"
    source_help = "gagavatar: a photo (or a GAGAvatar .avatar)"
    options = {"generate": (YAWS, PITCHES, SIZE, WEIGHTS, DEVICE, FLAME_MODEL)}

    @classmethod
    def generate(cls, sources, output, face, quiet, opts):
        """RGBA views (alpha: the splatting's coverage) at every (expression, pitch, yaw) of the grid."""
        source = sources[0]
        dev = check_device(opts["device"])
        av, head, model, _ = avatar_or_photo(source, gagavatar_weights(opts["weights"]), dev, face, quiet,
                                             opts["flame_model"], "the gagavatar generator needs one photo (or a "
                                             "GAGAvatar .avatar)")
        yaws, pitches = tuple(opts["yaws"]), tuple(opts["pitches"])
        names = tuple(av.expression_names)
        variants = expression_variants(av.expression, names)
        combos = list(itertools.product(range(len(variants)), pitches, yaws))
        expr = torch.stack([variants[e] for e, _, _ in combos])
        transforms = torch.stack([turned_transform(av.transform, y, p) for _, p, y in combos])
        scale = float(av.info.get("identity_scale", 1.0))
        R = av.config.render_size
        size = int(opts["size"] or R)
        images = []
        views = render_views(av, head, expr, transforms, dev, model, noise="stored")
        for rgb, alpha in tqdm(views, total=len(combos), desc="generating", unit="view", disable=quiet, leave=False):
            rgba = np.dstack([rgb, (np.clip(alpha, 0, 1) * 255 + 0.5).astype(np.uint8)])
            if size != R:
                rgba = cv2.resize(rgba, (size, size), interpolation=cv2.INTER_AREA if size < R else cv2.INTER_LINEAR)
            images.append(rgba)
        rot, trans = zip(*(view_to_tracking(t, scale) for t in transforms))
        n = len(images)
        tracking = generated_tracking("flame", size, size, av.config.focal * size / 2, av.identity.numpy(), scale,
                                      names, torch.stack(rot).numpy(), torch.stack(trans).numpy(), expr.numpy(),
                                      str(source), av.rig_record)
        generator = {"name": "gagavatar", "weights_sha256": av.weights_sha256, "source": str(source),
                     "yaws": list(yaws), "pitches": list(pitches), "expressions": list(GENERATED_EXPRESSIONS)}
        return write_view_set(output, images, tracking, ["generated"] * n, generator)
