"""One way to walk any visual input: a single image, a folder of images, or a video, frame by frame."""

from __future__ import annotations

import copy
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from headsplat.core.errors import InputError
from headsplat.core.fileio import check_input_file
from headsplat.media.image import IMAGE_SUFFIXES, read_image_uint8
from headsplat.media.video import VideoReader

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".gif")


def is_video_path(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def is_image_path(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


@dataclass(frozen=True)
class Frame:
    """One decoded frame.
    Attributes:
        index: position in the source, from 0.
        time_s: presentation time in seconds.
        rgb: (H, W, 3) uint8 pixels.
        name: the file name for image inputs, else ``""``.
    """
    index: int
    time_s: float
    rgb: np.ndarray
    name: str = ""


def _natural_key(p: Path):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", p.name)]


class FrameSource:
    """Frames of an image, a folder of images or a video, streamed (a video is never fully loaded).
    Attributes:
        path: the input path.
        kind: ``"image"``, ``"folder"`` or ``"video"``.
        fps: the video's frame rate; 25 for image inputs.
        n_frames: the number of frames (a video's from its header).
        size: (width, height) of the first frame.
    """
    def __init__(self, path: str | os.PathLike | list, fps: float | None = None):
        if isinstance(path, (list, tuple)):
            self._init_files([Path(p) for p in path], fps)
            return
        self.path = Path(path)
        if self.path.is_dir():
            self.kind = "folder"
            self._files = sorted((f for f in self.path.iterdir() if is_image_path(f) and not f.name.startswith(".")),
                                 key=_natural_key)
            if not self._files:
                raise InputError(f"{self.path}: folder has no images ({', '.join(IMAGE_SUFFIXES)})")
            self.fps = fps or 25.0
            self.n_frames = len(self._files)
            first = read_image_uint8(self._files[0])
            self.size = (first.shape[1], first.shape[0])
        elif is_video_path(self.path):
            self.kind = "video"
            self._video = VideoReader(self.path)
            self.fps = fps or self._video.info.fps
            self.n_frames = self._video.info.n_frames
            self.size = (self._video.info.width, self._video.info.height)
        else:
            check_input_file(self.path)
            if not is_image_path(self.path):
                raise InputError(f"{self.path}: unsupported file type '{self.path.suffix}' "
                                 f"(images: {', '.join(IMAGE_SUFFIXES)}; videos: {', '.join(VIDEO_SUFFIXES)})")
            self.kind = "image"
            self._files = [self.path]
            self.fps = fps or 25.0
            self.n_frames = 1
            first = read_image_uint8(self.path)
            self.size = (first.shape[1], first.shape[0])

    def _init_files(self, files: list[Path], fps: float | None) -> None:
        """Several image files taken as the frames of one sequence (they must share one size)."""
        if not files:
            raise InputError("no input files given")
        for f in files:
            check_input_file(f)
            if not is_image_path(f):
                raise InputError(f"{f}: several inputs must all be images ({', '.join(IMAGE_SUFFIXES)}); "
                                 "give a video on its own")
        self.kind = "folder"
        self.path = files[0]
        self._files = files
        self.fps = fps or 25.0
        self.n_frames = len(files)
        first = read_image_uint8(files[0])
        self.size = (first.shape[1], first.shape[0])
        for f in files[1:]:
            im = read_image_uint8(f)
            if (im.shape[1], im.shape[0]) != self.size:
                raise InputError(f"{f}: is {im.shape[1]}x{im.shape[0]} but {files[0]} is "
                                 f"{self.size[0]}x{self.size[1]}; "
                                 "photos of one avatar must share one size (one camera)")

    def first(self, n: int) -> "FrameSource":
        """The same source cut to its first ``n`` frames (decoding stops there)."""
        out = copy.copy(self)
        out.n_frames = max(0, min(int(n), self.n_frames))
        return out

    def __iter__(self) -> Iterator[Frame]:
        if self.kind == "video":
            for i, (t, rgb) in enumerate(self._video):
                if i >= self.n_frames:
                    return
                yield Frame(i, t, rgb)
        else:
            for i, f in enumerate(self._files[:self.n_frames]):
                yield Frame(i, i / self.fps, read_image_uint8(f), f.name)

    def __len__(self) -> int:
        return self.n_frames


def open_frames(path: str | os.PathLike | list, fps: float | None = None) -> FrameSource:
    """Open an image, a folder of images, a video, or a list of same-size image files as a
    :class:`FrameSource`."""
    return FrameSource(path, fps)


def stream_frames(source: FrameSource, indices: list[int]):
    """The (H, W, 3) uint8 frames ``indices`` (increasing) of ``source``, decoded one at a time.
    Raises:
        InputError: a frame could not be decoded.
    """
    if list(indices) != sorted(indices):
        raise ValueError("stream_frames: indices must increase")
    wanted, got = set(indices), set()
    for f in source:
        if f.index in wanted:
            got.add(f.index)
            yield f.rgb
            if len(got) == len(wanted):
                return
    raise InputError(f"{source.path}: could not decode frame(s) {sorted(wanted - got)}")
