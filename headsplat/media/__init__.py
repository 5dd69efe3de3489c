"""Media I/O: read images and videos into RGB frames (decoded, oriented), write mp4 and PNG sequences
atomically; the library's frames are float RGB, uint8 only at I/O."""

from headsplat.media.frames import Frame, FrameSource, is_image_path, is_video_path, open_frames
from headsplat.media.image import read_image, to_float, to_uint8, write_png
from headsplat.media.video import VideoReader, VideoWriter, probe_video

__all__ = ["read_image", "write_png", "to_float", "to_uint8", "VideoReader", "VideoWriter", "probe_video",
           "Frame", "FrameSource", "open_frames", "is_video_path", "is_image_path"]
