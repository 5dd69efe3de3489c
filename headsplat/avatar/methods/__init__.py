"""The avatar-method interface: what every kind of avatar does for the commands (create, animate, render, export,
view, eval), and the registry from a method's name (``avatar.json``'s ``"method"``) to its class.

A method is one class: ``headsplat`` (:mod:`.fitted`, Gaussians fitted to the input on the open rig or FLAME),
``gagavatar`` (:mod:`.gagavatar`, the released feed-forward network) and ``portrait4d`` (:mod:`.portrait4d`,
Portrait4D-v2's released network) are built in; another registers itself with
:func:`register_method` (see docs/methods.md). Commands never test a method's name: they ask the registry.
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterable, Iterator, Mapping

import cv2
import numpy as np

from headsplat.avatar.options import Option, accepted
from headsplat.avatar.registry import Registry
from headsplat.core.errors import HeadsplatError, InputError
from headsplat.media.frames import FrameSource, open_frames
from headsplat.track.tracking import Tracking

if TYPE_CHECKING:
    from headsplat.rig.base import HeadRig

COMMANDS = ("create", "animate", "render", "export", "view", "reenact", "cross")  # reenact, cross: eval's
DEFAULT_METHOD = "headsplat"
# The built-in methods: the modules that register them, imported on the first look-up.
BUILTIN_MODULES = ("headsplat.avatar.methods.fitted", "headsplat.avatar.methods.gagavatar",
                   "headsplat.avatar.methods.portrait4d")

Renderer = Callable[[int, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Animation:
    """A driven avatar's output, produced lazily.

    Attributes:
        frames: (H, W, 3) or (H, W, 4) uint8 output frames, one per driver frame, made as they are consumed.
        n_frames: how many ``frames`` yields.
        fps: the output's frame rate.
        shots: shots found in the driver.
        info: figures for the summary (JSON-serialisable), e.g. a camera fit's error.
    """

    frames: Iterable[np.ndarray]
    n_frames: int
    fps: float
    shots: int = 1
    info: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Reenactment:
    """What a method builds for self-reenactment (``eval reenact``) of a tracked video.

    Attributes:
        renderers: row name -> a context manager giving ``render(t, ground_truth) -> output`` (H, W, 3) uint8,
            frame ``t`` re-rendered into the real frame; the first row is the method's own.
        reference: the frame whose expression the avatar's reference expression stands for.
        exclude: frames not evaluated (those the avatar was made from).
        source_image: (H, W, 3) uint8 at the video's size, for the baselines; ``source_landmarks`` (478, 2+).
        made_from: what the avatar was made from, for the report.
    """

    renderers: Mapping[str, AbstractContextManager[Renderer]]
    reference: int
    exclude: frozenset
    source_image: np.ndarray
    source_landmarks: np.ndarray
    made_from: str


class AvatarMethod(ABC):
    """One kind of avatar. The class creates, loads and describes; an instance is one loaded avatar that
    animates, turns and renders itself.

    Class attributes:
        name: the method's name (``--method NAME``, ``avatar.json``'s ``"method"``).
        summary: one line for ``--help``.
        options: command -> the options it takes there (beyond every command's own arguments); anything else
            given to it is refused by name.
        cross_pose: how ``eval cross`` poses it (for the report).
        shares_driver_tracks: its drivers are tracked as ``headsplat track`` tracks them, with the avatar's rig.

    Instance attributes:
        avatar: the method's own avatar object (what ``create`` returns).
        rig: the head rig its drivers are tracked with.
    """

    name: ClassVar[str]
    summary: ClassVar[str]
    options: ClassVar[Mapping[str, tuple[Option, ...]]] = {}
    cross_pose: ClassVar[str] = "relative"
    #: whether ``track_driver`` of a video gives what ``headsplat track VIDEO --rig RIG`` writes (RIG: the
    #: avatar's): then ``headsplat batch`` tracks a driver that many of its avatars use once and passes the .track
    shares_driver_tracks: ClassVar[bool] = False

    avatar: Any
    rig: HeadRig

    # -- creating and loading ------------------------------------------------------------------------------------
    @classmethod
    def accept(cls, command: str, given: Mapping[str, Any]) -> dict[str, Any]:
        """The values of this method's options for ``command`` (defaults filled in); refuses, naming the option,
        any it does not take that was given another value than its default."""
        return accepted(f"the {cls.name} method", cls.options.get(command, ()), given, command_options(command))

    @classmethod
    @abstractmethod
    def create(cls, inputs: list[Path], output: Path, face: int, quiet: bool, opts: Mapping[str, Any]) -> Any:
        """Make an avatar of the person in ``inputs``, save it at ``output`` (a checked ``.avatar`` path,
        written atomically) and return the method's avatar object."""

    @classmethod
    @abstractmethod
    def describe(cls, avatar: Any) -> str:
        """What was created, for the command's summary line ("an avatar of 20000 Gaussians from 1 frame(s) ...")."""

    @classmethod
    @abstractmethod
    def load(cls, path: Path, opts: Mapping[str, Any]) -> AvatarMethod:
        """The avatar at ``path`` (its ``avatar.json`` names this method), ready for the command whose options
        are ``opts`` (the FLAME file, weights, device it needs)."""

    # -- playback ---------------------------------------------------------------------------------------------
    @abstractmethod
    def track_driver(self, driver: Path, face: int, quiet: bool, opts: Mapping[str, Any]
                     ) -> tuple[Tracking, FrameSource | None]:
        """The driver tracked the way this method needs it (rig, field of view, crops), and its frames (None for
        a ``.track`` file, which is used as it is)."""

    @abstractmethod
    def animation(self, tracking: Tracking, source: FrameSource | None, quiet: bool, opts: Mapping[str, Any]
                  ) -> Animation:
        """The avatar driven by ``tracking`` (``source``: the driver's frames, when it has them)."""

    @abstractmethod
    def turntable(self, n_frames: int, pitch: float, size: int, quiet: bool, opts: Mapping[str, Any]
                  ) -> Iterator[np.ndarray]:
        """``n_frames`` (size, size, 3|4) uint8 frames of one turn of the head about its vertical axis, tilted by
        ``pitch`` degrees."""

    @abstractmethod
    def still(self, yaw: float, pitch: float, size: int, opts: Mapping[str, Any]) -> np.ndarray:
        """(size, size, 3|4) uint8: the avatar with its head turned by ``yaw`` and ``pitch`` (degrees)."""

    def posable(self):
        """(:class:`~headsplat.avatar.avatar.Avatar`, rig): the avatar as headsplat's bound RGB Gaussians, for
        ``export`` and ``view``. Methods whose avatars are not that refuse, saying why."""
        raise HeadsplatError(f"an avatar made with --method {self.name} has no Gaussians of headsplat's kind "
                             "(bound RGB Gaussians): export and view take avatars made with --method headsplat")

    # -- evaluation -------------------------------------------------------------------------------------------
    @classmethod
    @abstractmethod
    def track_video(cls, source: FrameSource, face: int, quiet: bool, opts: Mapping[str, Any]
                    ) -> tuple[Tracking, HeadRig]:
        """A video to evaluate on, tracked as this method needs, and the rig it was tracked with."""

    @classmethod
    @abstractmethod
    def reenactment(cls, source: FrameSource, tracking: Tracking, rig: HeadRig, source_frames: list[int],
                    folder: Path, quiet: bool, opts: Mapping[str, Any]) -> Reenactment:
        """Self-reenactment: the avatar(s) built from the video's ``source_frames`` (or as ``opts`` say), saved
        in ``folder``, and their renderers."""

    @classmethod
    @abstractmethod
    def cross_source(cls, sources: list[Path], folder: Path, face: int, quiet: bool, opts: Mapping[str, Any]
                     ) -> AvatarMethod:
        """Cross-reenactment's avatar: ``sources`` (photos, or one ``.avatar``), made into ``folder`` when needed."""

    @abstractmethod
    def cross_renderer(self, tracking: Tracking, source: FrameSource | None, n_frames: int, opts: Mapping[str, Any]
                       ) -> Callable[[int], np.ndarray]:
        """``render(t) -> (H, W, 3) uint8`` for t = 0, 1, … in order: the avatar driven by another person
        (``tracking`` and ``source`` as :meth:`track_driver` gave them)."""

    @property
    @abstractmethod
    def source_image(self) -> np.ndarray:
        """(H, W, 3) uint8 the image the avatar was made from (its identity's reference)."""


# -- the registry -------------------------------------------------------------------------------------------------
METHODS: Registry[AvatarMethod] = Registry("method", AvatarMethod, "method", BUILTIN_MODULES, DEFAULT_METHOD, COMMANDS)
register_method = METHODS.register
method_names = METHODS.names
get_method = METHODS.get
command_options = METHODS.command_options


def method_of(path: str | os.PathLike) -> type[AvatarMethod]:
    """The method an ``.avatar`` folder was made with (avatar.json's ``"method"``, ``headsplat`` when absent).

    Raises:
        InputError: not an avatar folder, an unreadable avatar.json, or a method this headsplat does not have.
    """
    p = Path(path)
    meta = p / "avatar.json"
    if not p.exists():
        raise InputError(f"{p}: avatar not found")
    if not p.is_dir():
        raise InputError(f"{p}: not an avatar (expected a .avatar folder written by `headsplat create`)")
    if not meta.is_file():
        raise InputError(f"{p}: not an avatar: avatar.json is missing")
    try:
        name = json.loads(meta.read_text()).get("method", DEFAULT_METHOD)
    except (json.JSONDecodeError, AttributeError, UnicodeDecodeError) as e:
        raise InputError(f"{meta}: not a valid avatar.json ({e})") from None
    if name not in METHODS.entries():
        raise InputError(f"{p}: made with the method {name!r}, which this headsplat does not have "
                         f"({', '.join(method_names())})")
    return METHODS.entries()[name]


def load_avatar(path: str | os.PathLike, command: str, given: Mapping[str, Any]) -> tuple[AvatarMethod, dict]:
    """The avatar at ``path`` loaded by its own method for ``command``, and the accepted options' values."""
    cls = method_of(path)
    opts = cls.accept(command, given)
    return cls.load(Path(path), opts), opts


def check_source_frames(video, tracking: Tracking, frames: list[int]) -> None:
    """Every frame an avatar is to be made from exists in ``tracking`` and has a face."""
    for k in frames:
        if not 0 <= k < len(tracking):
            raise HeadsplatError(f"{video}: --source-frame {k} is outside the video's {len(tracking)} frames")
        if not tracking.found[k]:
            raise HeadsplatError(f"{video}: frame {k} has no face; choose another --source-frame")


def one_source_frame(method: str, video, tracking: Tracking, frames: list[int]) -> int:
    """The one frame an avatar of a one-photo ``method`` is made from in ``eval reenact`` (checked)."""
    if len(frames) != 1:
        raise HeadsplatError(f"eval reenact --method {method}: the avatar is made from one --source-frame")
    k = int(frames[0])
    check_source_frames(video, tracking, [k])
    return k


def driver_source(driver, max_frames: int | None) -> FrameSource:
    """The driver's frames, cut to its first ``max_frames`` (``--max-frames``, at least 1) when given."""
    if max_frames is not None and max_frames < 1:
        raise HeadsplatError("--max-frames must be at least 1")
    source = open_frames(driver)
    return source if max_frames is None else source.first(max_frames)


def driven_count(tracking: Tracking, max_frames: int | None) -> int:
    """How many of the driver's frames are animated (``--max-frames`` of them at most)."""
    return len(tracking) if max_frames is None else min(len(tracking), int(max_frames))


def sized(img: np.ndarray, size: int) -> np.ndarray:
    """(S, S, C) -> (size, size, C): area-averaged when shrinking, bilinear when growing."""
    if img.shape[0] == size:
        return img
    return cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA if size < img.shape[0] else cv2.INTER_LINEAR)
