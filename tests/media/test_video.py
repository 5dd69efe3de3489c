import numpy as np
import pytest

from headsplat.core.errors import InputError, OutputError
from headsplat.media import VideoReader, VideoWriter, open_frames, probe_video


def _frames(n, h=31, w=45):
    for i in range(n):
        f = np.zeros((h, w, 3), np.uint8)
        f[:, : (i * 3) % w] = 255
        f[..., 1] = 80
        yield f


def test_write_then_read_streams_frames_with_times(tmp_path):
    p = tmp_path / "v.mp4"
    with VideoWriter(p, fps=12.5) as w:
        for f in _frames(10):
            w.write(f)
    info = probe_video(p)
    assert (info.width, info.height) == (46, 32)  # odd sizes padded to even (yuv420p)
    assert info.fps == pytest.approx(12.5)
    frames = list(VideoReader(p))
    assert len(frames) == 10
    assert frames[3][0] == pytest.approx(3 / 12.5, abs=1e-3)
    assert frames[0][1].shape == (32, 46, 3) and frames[0][1].dtype == np.uint8
    assert abs(int(frames[5][1][10, 5, 0]) - 255) < 20 and abs(int(frames[5][1][10, 40, 0])) < 20


def test_failed_write_leaves_nothing(tmp_path):
    p = tmp_path / "v.mp4"
    with pytest.raises(RuntimeError):
        with VideoWriter(p, fps=25) as w:
            w.write(next(_frames(1)))
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_frame_size_change_is_refused(tmp_path):
    with pytest.raises(ValueError, match="differs from the first frame"):
        with VideoWriter(tmp_path / "v.mp4", fps=25) as w:
            w.write(np.zeros((8, 8, 3), np.uint8))
            w.write(np.zeros((10, 8, 3), np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_bad_videos(tmp_path):
    (tmp_path / "c.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 20)
    with pytest.raises(InputError, match="c.mp4: not a readable video"):
        probe_video(tmp_path / "c.mp4")
    (tmp_path / "x.xyz").write_bytes(b"abc")
    with pytest.raises(InputError, match="x.xyz: unsupported file type"):
        open_frames(tmp_path / "x.xyz")
    with pytest.raises(OutputError, match="must end in .mp4"):
        VideoWriter(tmp_path / "o.avi", fps=25)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="folder has no images"):
        open_frames(tmp_path / "empty")


def test_folder_of_images_in_natural_order(tmp_path):
    from PIL import Image

    for i in (10, 2, 1):
        Image.fromarray(np.full((4, 4, 3), i, np.uint8)).save(tmp_path / f"f{i}.png")
    src = open_frames(tmp_path)
    assert [f.name for f in src] == ["f1.png", "f2.png", "f10.png"]
    assert src.kind == "folder" and src.n_frames == 3


def test_phone_rotation_is_applied_to_size_and_pixels(tmp_path):
    """A portrait phone clip: stored landscape with a 90-degree display matrix, read upright."""
    from headsplat.media.compose import set_display_rotation
    from headsplat.media.frames import open_frames
    from headsplat.media.video import probe_video
    from wild_media import write_video

    f = np.zeros((64, 128, 3), np.uint8)
    f[:16, :16] = 255  # a white square in the stored frame's top-left corner
    p = set_display_rotation(write_video([f] * 3, tmp_path / "phone.mp4"), 1)
    info = probe_video(p)
    assert (info.width, info.height) == (64, 128)
    src = open_frames(p)
    rgb = next(iter(src)).rgb
    assert src.size == (64, 128) and rgb.shape == (128, 64, 3)
    # Turned clockwise for display, the stored top-left corner is the top-right one.
    assert rgb[:16, -16:].mean() > 200 and rgb[-16:, :16].mean() < 50 and rgb[:16, :16].mean() < 50
