"""Video files through PyAV (FFmpeg): streamed decoding with timestamps, atomic H.264 mp4 encoding."""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

from headsplat.core.errors import InputError, MissingDependencyError, OutputError

try:
    import av
except ImportError:  # only video files need PyAV: _av() says so when one is opened
    av = None
from headsplat.core.fileio import atomic_path, check_input_file


@dataclass(frozen=True)
class VideoInfo:
    """What a video file holds, read from its header.

    Attributes:
        width, height: display size in pixels (after rotation metadata).
        fps: average frame rate.
        n_frames: frame count from the header (0 when the container does not say).
        duration_s: duration in seconds (0 when unknown).
    """

    width: int
    height: int
    fps: float
    n_frames: int
    duration_s: float


def _av():
    """PyAV, or a clear error where it is missing (photo-only work does not need it)."""
    if av is None:
        raise MissingDependencyError("video files need PyAV: pip install av")
    return av


def _open(path: Path):
    try:
        container = _av().open(str(path))
    except (av.error.FFmpegError, OSError, ValueError) as e:
        raise InputError(f"{path}: not a readable video ({e})") from None
    if not container.streams.video:
        container.close()
        raise InputError(f"{path}: has no video stream")
    return container


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Read a video's size, fps and frame count without decoding it."""
    p = check_input_file(path)
    with _open(p) as c:
        s = c.streams.video[0]
        fps = float(s.average_rate or s.guessed_rate or 0) or 25.0
        dur = float(s.duration * s.time_base) if s.duration else (c.duration / 1e6 if c.duration else 0.0)
        n = s.frames or int(round(dur * fps))
        w, h = s.codec_context.width, s.codec_context.height
        # Phone videos carry a display rotation (the track's matrix): a quarter turn swaps width and height.
        if _quarter_turns(_first_frame_rotation(c, s)) % 2:
            w, h = h, w
    return VideoInfo(w, h, fps, n, dur)


def _first_frame_rotation(container, stream) -> float:
    """The display rotation of a stream in degrees, counter-clockwise (0 when the first frame says none)."""
    try:
        for frame in container.decode(stream):
            return float(getattr(frame, "rotation", 0) or 0)
    except av.error.FFmpegError:
        return 0.0  # an undecodable stream is reported when it is read
    return 0.0


def _quarter_turns(rotation: float) -> int:
    """Counter-clockwise quarter turns (0..3) for a display rotation in degrees."""
    return int(round(rotation / 90)) % 4


class VideoReader:
    """Iterate a video's frames one at a time: ``for t, rgb in VideoReader(path)`` with ``t`` in seconds
    and ``rgb`` a (H, W, 3) uint8 array. Rotation metadata (phone videos) is applied."""

    def __init__(self, path: str | os.PathLike):
        self.path = check_input_file(path)
        self.info = probe_video(self.path)

    def __iter__(self) -> Iterator[tuple[float, np.ndarray]]:
        n = 0
        with _open(self.path) as c:
            s = c.streams.video[0]
            s.thread_type = "AUTO"
            try:
                for frame in c.decode(s):
                    rgb = frame.to_ndarray(format="rgb24")
                    k = _quarter_turns(getattr(frame, "rotation", 0) or 0)
                    if k:
                        rgb = np.ascontiguousarray(np.rot90(rgb, k=k))
                    t = float(frame.time) if frame.time is not None else n / self.info.fps
                    n += 1
                    yield t, rgb
            except av.error.FFmpegError as e:
                raise InputError(f"{self.path}: video is corrupt after frame {n} ({e})") from None
        if n == 0:
            raise InputError(f"{self.path}: video has no decodable frames")


class VideoWriter:
    """Write RGB frames to an H.264 (yuv420p) mp4, atomically: the file appears only when :meth:`close`
    succeeds. Odd sizes are padded by one edge pixel to even. Use as a context manager.

    Args:
        path: output ``.mp4`` path.
        fps: frame rate.
        crf: x264 quality (lower is better; 18 is visually lossless).
    """

    def __init__(self, path: str | os.PathLike, fps: float, crf: int = 18):
        self.path = Path(path)
        if self.path.suffix.lower() not in (".mp4", ".m4v", ".mov"):
            raise OutputError(f"{self.path}: video output must end in .mp4")
        self.fps = fps
        self.crf = crf
        self._ctx = atomic_path(self.path, suffix=".mp4")
        self._tmp = self._ctx.__enter__()
        self._container = _av().open(str(self._tmp), mode="w", format="mp4")
        self._stream = None
        self.n_frames = 0

    def write(self, rgb: np.ndarray) -> None:
        """Append one (H, W, 3) uint8 frame; every frame must have the first frame's size."""
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"VideoWriter.write: expected (H, W, 3) uint8, got {rgb.shape} {rgb.dtype}")
        h, w = rgb.shape[:2]
        if h % 2 or w % 2:
            rgb = np.pad(rgb, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        if self._stream is None:
            rate = Fraction(self.fps).limit_denominator(1001)
            self._stream = self._container.add_stream("libx264", rate=rate)
            self._stream.width, self._stream.height = rgb.shape[1], rgb.shape[0]
            self._stream.pix_fmt = "yuv420p"
            self._stream.options = {"crf": str(self.crf), "preset": "veryfast"}
        elif (rgb.shape[1], rgb.shape[0]) != (self._stream.width, self._stream.height):
            raise ValueError(f"VideoWriter.write: frame size {rgb.shape[1]}x{rgb.shape[0]} differs from "
                             f"the first frame's {self._stream.width}x{self._stream.height}")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.n_frames += 1

    def close(self) -> None:
        """Flush the encoder and move the finished file into place."""
        if self._container is None:
            return
        try:
            if self._stream is None:
                raise OutputError(f"{self.path}: no frames were written")
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
            self._container = None
            self._ctx.__exit__(None, None, None)
        except BaseException as e:
            self.abort(e)
            raise

    def abort(self, exc: BaseException | None = None) -> None:
        """Discard the partial file."""
        if self._container is not None:
            try:
                self._container.close()
            except av.error.FFmpegError:
                pass  # the partial file is deleted below; its container's state no longer matters
            self._container = None
            err = exc or RuntimeError("aborted")
            self._ctx.__exit__(type(err), err, None)  # deletes the temporary file

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, et, ev, tb) -> None:
        if et is None:
            self.close()
        else:
            self.abort(ev)
