"""The browser viewer: served locally, loaded in headless Chromium (Debian's package), controls and a driver
move the avatar; bad input fails before the server starts."""

import shutil
import socket
import subprocess
import time

import numpy as np
import pytest

from headsplat import api
from headsplat.cli.main import main

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_browser = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (make test "
                                                             "installs it when it can: apt-get install chromium)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _screenshot(url: str, path) -> np.ndarray:
    """The page as headless Chromium draws it (WebGL through SwiftShader), 800x600."""
    from PIL import Image

    subprocess.run([CHROMIUM, "--headless=new", "--no-sandbox", "--use-angle=swiftshader",
                    "--enable-unsafe-swiftshader", "--window-size=800,600", "--virtual-time-budget=15000",
                    f"--screenshot={path}", url],
                   check=True, capture_output=True, timeout=180)
    return np.asarray(Image.open(path).convert("RGB")).astype(np.float32)


def _scene(img: np.ndarray) -> np.ndarray:
    return img[100:, :500]  # the 3D view, left of the control panel and below viser's notices


@pytest.fixture
def viewer(astro_avatar):
    v = api.view(astro_avatar, port=_free_port(), open_browser=False, block=False, quiet=True)
    yield v
    v.close()


@pytest.mark.browser
@needs_browser
def test_page_shows_the_avatar_and_controls_move_it(viewer, tmp_path):
    first = _screenshot(viewer.url, tmp_path / "a.png")
    scene = _scene(first)
    # the head covers a good part of the view and is not a flat colour
    not_white = (np.abs(scene - 255).max(-1) > 30).mean()
    assert not_white > 0.2 and scene.std() > 30, (not_white, scene.std())
    viewer.set_control("head_yaw", 40.0)
    viewer.set_control("jaw_open", 1.0)
    second = _screenshot(viewer.url, tmp_path / "b.png")
    assert np.abs(_scene(second) - scene).mean() > 5.0


def test_driver_plays_and_poses_follow_it(astro_avatar, posed_track, tmp_path):
    track = posed_track
    v = api.view(astro_avatar, driver=track, port=_free_port(), open_browser=False, block=False, quiet=True)
    try:
        assert len(v.motion) == 48
        v.set_frame(0)
        a = v.posed().means.clone()
        v.set_frame(12)  # the head has turned and the jaw opened by then
        assert (v.posed().means - a).norm(dim=-1).mean() > 0.005
        v._play.value = True
        time.sleep(1.0)
        assert v.state.frame > 12
    finally:
        v.close()


def test_bad_input_fails_before_serving(astro_avatar, insightface_dir, tmp_path, capsys):
    port = _free_port()
    assert main(["-q", "view", str(tmp_path / "none.avatar"), "--no-browser", "--port", str(port)]) == 1
    assert "none.avatar: avatar not found" in capsys.readouterr().err
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", port))
        busy.listen()
        assert main(["-q", "view", str(astro_avatar), "--no-browser", "--port", str(port)]) == 1
        err = capsys.readouterr().err
        assert f"port {port} on 127.0.0.1 is busy" in err and "--port" in err
    assert main(["-q", "view", str(astro_avatar), "--no-browser", "--port", str(port),
                 "--driver", str(insightface_dir / "mask_white.jpg")]) == 1
    assert "no face found" in capsys.readouterr().err
