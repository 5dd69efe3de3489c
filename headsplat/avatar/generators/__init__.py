"""The generator interface: what writes a view set of a person (images with known cameras and rig parameters, for
``create --views``), and the registry from a generator's name (``generate --model NAME``) to its class.

Built in: ``oracle`` (:mod:`.oracle`, exact renders of a known avatar), ``gagavatar`` (:mod:`.gagavatar`),
``cap4d`` (:mod:`.cap4d`), ``omniavatar`` (:mod:`.omniavatar`) and ``portrait4d`` (:mod:`.portrait4d`); another
registers itself with :func:`register_generator` (see docs/methods.md).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Mapping

from headsplat.avatar.options import Option, accepted
from headsplat.avatar.registry import Registry
from headsplat.core.errors import HeadsplatError

YAWS = Option("yaws", "head yaws in degrees (every combination with the pitches)",
              (-60, -45, -30, -15, 0, 15, 30, 45, 60), cli=False)
PITCHES = Option("pitches", "head pitches in degrees", (-20, 0, 20), cli=False)
SIZE = Option("size", "side of the views in pixels (default: the avatar's framing; GAGAvatar: 512)", type=int,
              metavar="S")

BUILTIN_MODULES = ("headsplat.avatar.generators.oracle", "headsplat.avatar.generators.gagavatar",
                   "headsplat.avatar.generators.cap4d", "headsplat.avatar.generators.omniavatar",
                   "headsplat.avatar.generators.portrait4d")


class Generator(ABC):
    """One generator of view sets.

    Class attributes:
        name: ``generate --model NAME``.
        summary: one line for ``--help``.
        options: {"generate": the options it takes}; anything else given to it is refused by name.
        min_sources, max_sources: how many sources it takes (max None: any number).
        source_help: what its sources are, for ``--help``.
    """

    name: ClassVar[str]
    summary: ClassVar[str]
    options: ClassVar[Mapping[str, tuple[Option, ...]]] = {}
    min_sources: ClassVar[int] = 1
    max_sources: ClassVar[int | None] = 1
    source_help: ClassVar[str] = ""

    @classmethod
    def accept(cls, given: Mapping[str, Any]) -> dict[str, Any]:
        """The values of this generator's options (defaults filled in); refuses, naming the option, any it does
        not take that was given another value than its default."""
        return accepted(f"the {cls.name} generator", cls.options.get("generate", ()), given,
                        GENERATORS.command_options("generate"))

    @classmethod
    def check_sources(cls, sources: list[Path]) -> None:
        if cls.max_sources == 0 and sources:
            raise HeadsplatError(f"the {cls.name} generator takes no source, got {len(sources)} "
                                 f"({cls.source_help})")
        if cls.max_sources is not None and len(sources) > cls.max_sources:
            many = "one source" if cls.max_sources == 1 else f"at most {cls.max_sources} sources"
            raise HeadsplatError(f"the {cls.name} generator takes {many}, got {len(sources)}")
        if len(sources) < cls.min_sources:
            many = "a source" if cls.min_sources == 1 else f"at least {cls.min_sources} sources"
            raise HeadsplatError(f"the {cls.name} generator needs {many} ({cls.source_help})")

    @classmethod
    @abstractmethod
    def generate(cls, sources: list[Path], output: Path, face: int, quiet: bool, opts: Mapping[str, Any]) -> Path:
        """Write the view set of ``sources`` into ``output`` (a checked folder path, written atomically)."""


GENERATORS: Registry[Generator] = Registry("generator", Generator, "model", BUILTIN_MODULES, "oracle", ("generate",))
register_generator = GENERATORS.register
generator_names = GENERATORS.names
get_generator = GENERATORS.get
