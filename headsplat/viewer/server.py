"""The browser viewer: an avatar's Gaussians streamed to a local web page (viser), with the rig's controls,
driver playback, screenshots and an update-rate readout.

viser renders the splats in the browser (WebGL, depth-sorted on the client); this module only poses the avatar
on the server when a control or the playback frame changes and sends the new Gaussians. The page is served by
viser's own web server on ``host:port`` (127.0.0.1 by default) and loads nothing from the network.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from headsplat.avatar.animate import Motion
from headsplat.avatar.avatar import Avatar, pose_avatar
from headsplat.core.errors import HeadsplatError, MissingDependencyError
from headsplat.core.rotation import axis_angle_to_matrix, matrix_to_axis_angle, quat_to_matrix
from headsplat.media.image import write_png
from headsplat.rig.base import HeadRig
from headsplat.rig.controls import HEAD_CONTROLS, controls_to_params, rig_controls
from headsplat.splat.gaussians import SH_C0, GaussianSet


def check_port_free(host: str, port: int) -> None:
    """Raise HeadsplatError naming the port when something already listens on it (viser would silently move
    to the next port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            raise HeadsplatError(f"port {port} on {host} is busy ({e.strerror}); choose another with --port") from None


def splat_arrays(gs: GaussianSet) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """What viser draws: centres (N, 3), covariances (N, 3, 3), base colours (N, 3) in [0, 1] and opacities
    (N, 1), all float32 (view-dependent SH beyond degree 0 is not shown)."""
    with torch.no_grad():
        R = quat_to_matrix(gs.quats / gs.quats.norm(dim=-1, keepdim=True))
        s2 = torch.exp(2 * gs.log_scales)
        cov = (R * s2[..., None, :]) @ R.transpose(-1, -2)
        rgb = (gs.sh[:, 0] * SH_C0 + 0.5).clamp(0, 1)
        op = torch.sigmoid(gs.opacity_logits)[:, None]
    return tuple(x.float().cpu().numpy() for x in (gs.means, cov, rgb, op))


@dataclass
class ViewerState:
    """What the page shows: control values, the driver frame, whether it plays."""
    controls: dict
    frame: int = 0
    playing: bool = False
    use_driver: bool = False


class AvatarViewer:
    """A running viewer of one avatar (see the module docstring).
    Args:
        avatar, rig: the avatar and its rig.
        motion: a driver's retargeted motion to play (optional); ``fps`` its frame rate.
        host, port: where the page is served.
        screenshot_dir: where the screenshot button writes PNGs.
    """
    def __init__(self, avatar: Avatar, rig: HeadRig, motion: Motion | None = None, fps: float = 25.0,
                 host: str = "127.0.0.1", port: int = 8080, screenshot_dir: str | Path = "."):
        try:
            import viser
        except ImportError as e:
            raise MissingDependencyError(f"the viewer needs viser ({e}): pip install 'headsplat[viewer]'") from None
        check_port_free(host, port)
        self.avatar, self.rig, self.motion, self.fps = avatar, rig, motion, fps
        self.screenshot_dir = Path(screenshot_dir)
        self.ranges = rig_controls(avatar.expression_names)
        self.state = ViewerState(controls={k: 0.0 for k in self.ranges}, use_driver=motion is not None)
        self._lock = threading.Lock()
        self._updates: list[float] = []
        self._closing = threading.Event()
        self.server = viser.ViserServer(host=host, port=port, verbose=False)
        self.url = f"http://{host}:{self.server.get_port()}"
        self.server.scene.set_up_direction("+y")
        self.server.gui.configure_theme(show_logo=False)
        centres, cov, rgb, op = splat_arrays(self.posed())
        self.splats = self.server.scene.add_gaussian_splats("/avatar", centers=centres, covariances=cov,
                                                            rgbs=rgb, opacities=op)
        cam = self.server.initial_camera  # every page opens facing the avatar, 0.8 m away
        cam.position, cam.look_at, cam.up, cam.fov = (0.0, 0.0, 0.8), (0.0, 0.0, 0.0), (0.0, 1.0, 0.0), np.radians(30.0)
        self._build_gui()
        self._player = threading.Thread(target=self._play_loop, daemon=True)
        self._player.start()

    # -- posing --------------------------------------------------------------------------------------------
    def posed(self) -> GaussianSet:
        """The avatar's Gaussians for the current state, head at the origin (orbit centre)."""
        av = self.avatar
        with self._lock:
            state = ViewerState(dict(self.state.controls), self.state.frame, self.state.playing,
                                self.state.use_driver)
        if state.use_driver and self.motion is not None:
            t = min(state.frame, len(self.motion) - 1)
            base_exp, base_rot = self.motion.expression[t], self.motion.rotation[t]
            offsets = self.motion.frame(t)["offsets"]
        else:
            base_exp, base_rot, offsets = av.expression, av.rotation, None
        exp, turn = controls_to_params(state.controls, av.expression_names, 1)
        # head turns apply in the head's own frame on top of the base rotation
        rot = matrix_to_axis_angle(axis_angle_to_matrix(base_rot) @ axis_angle_to_matrix(turn[0]))
        with torch.no_grad():
            return pose_avatar(av, self.rig, base_exp + exp[0], rot, torch.zeros(3), offsets)

    def refresh(self) -> None:
        """Pose and send the Gaussians; record the update time for the rate readout."""
        centres, cov, rgb, op = splat_arrays(self.posed())
        self.splats.set_gaussians(centres, cov, rgb, op)
        now = time.perf_counter()
        self._updates = [t for t in self._updates if now - t < 2.0] + [now]
        rate = (len(self._updates) - 1) / max(now - self._updates[0], 1e-6) if len(self._updates) > 1 else 0.0
        self._rate.value = f"{rate:.1f} updates/s · {len(self.avatar.gaussians)} Gaussians"

    def set_control(self, name: str, value: float) -> None:
        """Move a control (as its slider does) and update the picture."""
        if name not in self.ranges:
            raise KeyError(f"unknown control {name!r}; this avatar has {', '.join(self.ranges)}")
        self._sliders[name].value = float(value)  # the slider's callback refreshes

    def set_frame(self, frame: int) -> None:
        if self.motion is None:
            raise HeadsplatError("this viewer has no driver")
        self._timeline.value = int(frame)

    # -- page ----------------------------------------------------------------------------------------------
    def _build_gui(self) -> None:
        gui = self.server.gui
        self._rate = gui.add_text("Rate", initial_value="", disabled=True)
        self._sliders = {}
        with gui.add_folder("Expression and head"):
            for name, (lo, hi) in self.ranges.items():
                step = 1.0 if name in HEAD_CONTROLS else 0.01
                slider = gui.add_slider(name, min=lo, max=hi, step=step, initial_value=0.0)
                slider.on_update(self._slider_callback(name))
                self._sliders[name] = slider
            gui.add_button("Reset").on_click(lambda _: self._reset())
        if self.motion is not None:
            with gui.add_folder("Driver"):
                self._play = gui.add_checkbox("Play", initial_value=False)
                self._play.on_update(lambda _: self._set_state(playing=self._play.value))
                self._timeline = gui.add_slider("Frame", min=0, max=max(len(self.motion) - 1, 1), step=1,
                                                initial_value=0)
                self._timeline.on_update(lambda _: self._set_state(frame=int(self._timeline.value)))
                self._follow = gui.add_checkbox("Follow driver", initial_value=True)
                self._follow.on_update(lambda _: self._set_state(use_driver=self._follow.value))
        self._shot = gui.add_button("Save screenshot")
        self._shot.on_click(lambda event: self._screenshot(event.client))
        self._shot_note = gui.add_text("Saved", initial_value="", disabled=True)

    def _slider_callback(self, name: str):
        def cb(_):
            with self._lock:
                self.state.controls[name] = float(self._sliders[name].value)
            self.refresh()
        return cb

    def _set_state(self, **kw) -> None:
        with self._lock:
            for k, v in kw.items():
                setattr(self.state, k, v)
        self.refresh()

    def _reset(self) -> None:
        for s in self._sliders.values():
            s.value = 0.0

    def _screenshot(self, client) -> None:

        if client is None:
            return
        img = client.get_render(height=720, width=720, transport_format="png")
        path = self.screenshot_dir / time.strftime("headsplat-view-%Y%m%d-%H%M%S.png")
        write_png(path, np.asarray(img)[..., :3])
        self._shot_note.value = str(path)

    def _play_loop(self) -> None:
        while not self._closing.is_set():
            t0 = time.perf_counter()
            if self.motion is not None and self.state.playing:
                nxt = (self.state.frame + 1) % len(self.motion)
                self._timeline.value = nxt  # its callback refreshes
            time.sleep(max(0.0, 1.0 / self.fps - (time.perf_counter() - t0)))

    def close(self) -> None:
        self._closing.set()
        self.server.stop()
