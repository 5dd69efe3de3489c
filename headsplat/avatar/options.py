"""The options that avatar methods and generators declare, each defined once: its parameter name, default,
choices and command-line flag. The CLI builds its arguments from the declarations; commands refuse by name an
option given to a method or generator that does not take it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from headsplat.core.errors import ArgumentError
from headsplat.core.validate import check_choice


@dataclass(frozen=True)
class Option:
    """One option of a command, as a Python keyword argument and a command-line flag.

    Attributes:
        name: the Python parameter (``max_frames``).
        help: one line for ``--help``.
        default: its value when not given (an option at its default counts as not given).
        type: the command line's conversion of the flag's text (None: text).
        choices: the allowed values, or None.
        flag: the command-line flag (default ``--`` + the name with dashes: ``--max-frames``).
        flag_value: for switches, the value the flag sets (``--paste-back`` sets True, ``--no-refiner`` sets
            False); None for flags that take a value.
        cli: False for options only the Python functions take (lists of angles, say).
        metavar: the value's name in ``--help``.
        many: the flag takes one or more values (a list).
    """

    name: str
    help: str
    default: Any = None
    type: Callable | None = None
    choices: tuple | None = None
    flag: str | None = None
    flag_value: Any = None
    cli: bool = True
    metavar: str | None = None
    many: bool = False

    @property
    def cli_flag(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")

    def check(self, value):
        """``value`` when it is one of the choices (or there are none), else :class:`ArgumentError`."""
        return value if self.choices is None else check_choice(self.name, value, self.choices)


def accepted(owner: str, declared: tuple[Option, ...], given: Mapping[str, Any], known: Mapping[str, Option]
             ) -> dict[str, Any]:
    """The values of ``owner``'s ``declared`` options (defaults filled in), after refusing every option of
    ``given`` that it does not declare but that was given a value other than its default.

    Args:
        owner: "the gagavatar method", "the cap4d generator": named in the refusal.
        declared: the options ``owner`` takes for this command.
        given: parameter name -> value, as the command received them.
        known: every option of this command by name (to know the defaults of the ones ``owner`` lacks).

    Raises:
        ArgumentError: an option ``owner`` does not take (one line naming the option, the owner and who takes it),
            an unknown option name, or a value outside an option's choices.
    """
    names = {o.name for o in declared}
    for name, value in given.items():
        if name in names:
            continue
        option = known.get(name)
        if option is None:
            raise ArgumentError(name, f"unknown option for {owner}")
        if value is not None and value != option.default:
            raise ArgumentError(name, f"not an option of {owner}")
    values = {o.name: given.get(o.name, o.default) for o in declared}
    for o in declared:
        if values[o.name] is not None:
            o.check(values[o.name])
    return values


def flag_of(name: str) -> str:
    """The command-line flag of a parameter name, for messages (``max_frames`` -> ``--max-frames``)."""
    return "--" + name.replace("_", "-")


# -- options several methods share ------------------------------------------------------------------------------
DEVICES = ("cpu", "cuda")
PathLike = str | os.PathLike

DEVICE = Option("device", "where it runs: cpu (default) or cuda", "cpu", choices=DEVICES)
FLAME_MODEL = Option("flame_model", "FLAME model file (default: $HEADSPLAT_FLAME_MODEL or \"flame_model\" in "
                     "~/.config/headsplat/config.json); for FLAME avatars and the models built on FLAME")
FLAME_EMBEDDING = Option("flame_embedding", "FLAME: a MediaPipe landmark embedding .npz (lmk_face_idx, lmk_b_coords, "
                         "landmark_indices) instead of the one headsplat computes")
SEED = Option("seed", "random seed (same seed, same result)", 0, type=int)
WEIGHTS = Option("weights", "a learned model's released weights (default: the model's environment variable or "
                 "config key, see docs/learned-models.md): GAGAvatar.pt ($HEADSPLAT_GAGAVATAR_WEIGHTS, "
                 "\"gagavatar_weights\"), CAP4D's cap4d_mmdm_100k.ckpt ($HEADSPLAT_CAP4D_WEIGHTS, \"cap4d_weights\"), "
                 "portrait4d-v2-vfhq512.pkl ($HEADSPLAT_PORTRAIT4D_WEIGHTS, \"portrait4d_weights\"), OmniAvatar's "
                 "network pickle ($HEADSPLAT_OMNIAVATAR_WEIGHTS, \"omniavatar_weights\")", metavar="FILE")
MAX_FRAMES = Option("max_frames", "learned models' avatars: animate only the first N driver frames", type=int,
                    metavar="N")
