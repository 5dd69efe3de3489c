"""The ``oracle`` generator: exact renders of a known avatar at many head poses and expressions
(:func:`headsplat.avatar.oracle.oracle_views`), the ground truth for tests and benchmarks of many-view fitting."""

from __future__ import annotations

from headsplat.avatar.generators import PITCHES, SIZE, YAWS, Generator, register_generator
from headsplat.avatar.methods.fitted import load_fitted
from headsplat.avatar.options import FLAME_MODEL
from headsplat.avatar.oracle import oracle_views
from headsplat.avatar.viewset import write_view_set
from headsplat.core.errors import HeadsplatError


@register_generator
class OracleGenerator(Generator):
    name = "oracle"
    summary = "renders of a known .avatar at head yaw -60..60 by 15, pitch -20/0/20 and five expressions"
    source_help = "oracle: the known .avatar to render"
    options = {"generate": (YAWS, PITCHES, SIZE, FLAME_MODEL)}

    @classmethod
    def generate(cls, sources, output, face, quiet, opts):
        source = sources[0]
        if source.suffix.lower() != ".avatar":
            raise HeadsplatError(f"{source}: the oracle generator renders a known avatar; give a .avatar folder")
        avatar, rig = load_fitted(source, opts["flame_model"])
        yaws, pitches = opts["yaws"], opts["pitches"]
        images, tracking = oracle_views(avatar, rig, yaws, pitches, size=opts["size"])
        return write_view_set(output, images, tracking, ["generated"] * len(images),
                              {"name": "oracle", "avatar": str(source), "yaws": list(yaws), "pitches": list(pitches)})
