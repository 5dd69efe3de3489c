"""``headsplat view``: the browser viewer."""

from __future__ import annotations

import os
import time
import webbrowser
from pathlib import Path

from headsplat.avatar.animate import driver_motion
from headsplat.avatar.methods import load_avatar
from headsplat.viewer.server import AvatarViewer, check_port_free


def view(avatar: str | os.PathLike, driver: str | os.PathLike | None = None, port: int = 8080,
         host: str = "127.0.0.1", open_browser: bool = True, face: int = 0, quiet: bool = False,
         flame_model: str | os.PathLike | None = None, screenshot_dir: str | os.PathLike = ".", block: bool = True,
         **options):
    """Serve the browser viewer of an avatar (``headsplat view``): orbit camera, the rig's controls, playback
    of a driver, screenshots. Everything is checked before the server starts (avatar, driver, port).

    Args:
        avatar: the ``.avatar`` folder. driver: a video, image(s) or ``.track`` to play (optional).
        port, host: where the page is served (localhost by default).
        open_browser: open the page in the default browser.
        screenshot_dir: where the page's screenshot button saves PNGs.
        block: serve until interrupted (Ctrl-C); otherwise return the running viewer (call ``close()``).

    Returns:
        the :class:`~headsplat.viewer.server.AvatarViewer` (after it stopped, when ``block``).
    """
    loaded, opts = load_avatar(avatar, "view", dict(flame_model=flame_model, **options))
    av, rig = loaded.posable()
    check_port_free(host, port)
    motion, fps = None, 25.0
    if driver is not None:
        tracking, _ = loaded.track_driver(Path(driver), face, quiet, opts)
        motion = driver_motion(av, tracking)
        fps = tracking.fps
    viewer = AvatarViewer(av, rig, motion, fps=fps, host=host, port=port, screenshot_dir=screenshot_dir)
    if open_browser:
        webbrowser.open(viewer.url)
    if not block:
        return viewer
    if not quiet:
        print(f"headsplat view: {viewer.url} (Ctrl-C to stop)", flush=True)
    try:
        while True:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        viewer.close()
    return viewer
