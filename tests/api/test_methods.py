"""Every registered avatar method passes one contract through the public functions: create, save -> load, frames
for a 3-frame motion, a turntable and a still, refusal of an option it does not take. A tiny method defined here
registers itself without touching ``headsplat.api`` or ``headsplat.cli``, and the CLI offers its option."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from headsplat import api
from headsplat.avatar.methods import (
    Animation,
    AvatarMethod,
    get_method,
    load_avatar,
    method_names,
    method_of,
    register_method,
)
from headsplat.avatar.options import Option
from headsplat.avatar.viewset import generated_tracking
from headsplat.cli.main import main
from headsplat.core.errors import ArgumentError, HeadsplatError
from headsplat.core.fileio import atomic_dir
from headsplat.media.frames import open_frames

GAIN = Option("tiny_gain", "tiny test method: brightness of its frames", 1.0, type=float)


@register_method
class TinyMethod(AvatarMethod):
    """A method in a few lines: a flat colour taken from the photo, brightened by ``tiny_gain``."""

    name = "tiny"
    summary = "a flat colour (tests only)"
    options = {"create": (GAIN,), "animate": (GAIN,), "render": (GAIN,)}

    def __init__(self, avatar: dict):
        self.avatar = avatar
        self.rig = None

    @classmethod
    def create(cls, inputs, output, face, quiet, opts):
        img = next(iter(open_frames(inputs[0]))).rgb
        avatar = {"format": "headsplat.avatar", "version": 2, "method": cls.name,
                  "colour": img.reshape(-1, 3).mean(0).tolist(), "gain": opts["tiny_gain"]}
        with atomic_dir(output) as tmp:
            (tmp / "avatar.json").write_text(json.dumps(avatar))
        return avatar

    @classmethod
    def describe(cls, avatar):
        return f"a flat colour {avatar['colour']}"

    @classmethod
    def load(cls, path, opts):
        return cls(json.loads((path / "avatar.json").read_text()))

    def _frame(self, gain: float, size: int = 16) -> np.ndarray:
        c = np.clip(np.asarray(self.avatar["colour"]) * self.avatar["gain"] * gain, 0, 255)
        return np.broadcast_to(c.astype(np.uint8), (size, size, 3)).copy()

    def track_driver(self, driver, face, quiet, opts):
        source = open_frames(driver)
        n = sum(1 for _ in source)
        z = np.zeros((n, 3))
        return generated_tracking("open", 16, 16, 16.0, np.zeros((478, 3)), 1.0, (), z, z, np.zeros((n, 0)),
                                  str(driver), {}), source

    def animation(self, tracking, source, quiet, opts):
        return Animation((self._frame(opts["tiny_gain"]) for _ in range(len(tracking))), len(tracking), 25.0)

    def turntable(self, n_frames, pitch, size, quiet, opts):
        return (self._frame(opts["tiny_gain"], size) for _ in range(n_frames))

    def still(self, yaw, pitch, size, opts):
        return self._frame(opts["tiny_gain"], size)

    @classmethod
    def track_video(cls, source, face, quiet, opts):
        raise HeadsplatError("the tiny method is not evaluated")

    @classmethod
    def reenactment(cls, source, tracking, rig, source_frames, folder, quiet, opts):
        raise HeadsplatError("the tiny method is not evaluated")

    @classmethod
    def cross_source(cls, sources, folder, face, quiet, opts):
        raise HeadsplatError("the tiny method is not evaluated")

    def cross_renderer(self, tracking, source, n_frames, opts):
        raise HeadsplatError("the tiny method is not evaluated")

    @property
    def source_image(self):
        return self._frame(1.0)


@pytest.fixture(scope="module")
def three_frames(posed_video, tmp_path_factory) -> Path:
    """A driver of three frames (a folder of PNGs) from the posed astronaut video."""
    folder = tmp_path_factory.mktemp("driver3")
    for f in open_frames(posed_video[0]):
        if f.index >= 3:
            break
        Image.fromarray(f.rgb).save(folder / f"{f.index:03d}.png")
    return folder


# method -> (how its avatar is made, an option it does not take and a value for it)
CONTRACT = {
    "headsplat": ("fixture", ("refiner", False)),
    "gagavatar": ("gaga", ("pose", "absolute")),
    "portrait4d": ("p4d", ("refiner", False)),
    "tiny": ("tiny", ("paste_back", True)),
}


def test_every_registered_method_has_a_contract_case():
    assert set(method_names()) <= set(CONTRACT), "add the new method to CONTRACT"


@pytest.fixture(params=sorted(CONTRACT))
def made(request, astro_avatar, astronaut_path, tmp_path):
    """(method name, avatar path, options its commands need)."""
    name = request.param
    kind = CONTRACT[name][0]
    if kind == "fixture":
        return name, astro_avatar, {}
    if kind == "gaga":  # made by `create --method gagavatar` once for the session (conftest.tiny_gagavatar)
        path, weights = request.getfixturevalue("tiny_gagavatar")
        return name, path, {"weights": str(weights), "flame_model": str(request.getfixturevalue("flame_head_file"))}
    if kind == "p4d":  # made by `create --method portrait4d` once for the session (conftest.portrait4d_avatar)
        return (name, *request.getfixturevalue("portrait4d_avatar"))
    path = tmp_path / f"{name}.avatar"
    api.create(astronaut_path, path, method=name, quiet=True)
    return name, path, {}


def test_contract(made, three_frames, tmp_path):
    name, path, opts = made
    cls = get_method(name)
    assert method_of(path) is cls
    loaded, _ = load_avatar(path, "animate", opts)
    assert isinstance(loaded, cls)
    res = api.animate(path, three_frames, tmp_path / "frames", quiet=True, **opts)
    written = sorted((tmp_path / "frames").glob("*.png"))
    assert res["frames"] == len(written) == 3
    assert np.asarray(Image.open(written[0])).std() > 0 or name == "tiny"
    api.render(path, tmp_path / "turn", frames=2, size=32, quiet=True, **opts)
    assert len(list((tmp_path / "turn").glob("*.png"))) == 2
    still = api.render(path, tmp_path / "still.png", orbit=False, yaw=15, size=32, quiet=True, **opts)
    assert np.asarray(Image.open(still)).shape[:2] == (32, 32)
    option, value = CONTRACT[name][1]
    with pytest.raises(ArgumentError, match=f"{option}: not an option of the {name} method") as e:
        api.animate(path, three_frames, tmp_path / "refused.mp4", quiet=True, **opts, **{option: value})
    assert e.value.param == option
    assert not (tmp_path / "refused.mp4").exists()


def test_a_registered_method_gets_its_flags_and_refusals_without_touching_api_or_cli(astronaut_path, tmp_path,
                                                                                    capsys):
    out = tmp_path / "t.avatar"
    assert main(["-q", "create", str(astronaut_path), "--method", "tiny", "--tiny-gain", "0.5", "-o", str(out)]) == 0
    assert "created a flat colour" in capsys.readouterr().out
    assert json.loads((out / "avatar.json").read_text())["gain"] == 0.5
    # its option, given to a method that does not take it, is refused in one line naming both
    assert main(["-q", "create", str(astronaut_path), "--tiny-gain", "2", "-o", str(tmp_path / "h.avatar")]) == 1
    assert capsys.readouterr().err.strip() == "headsplat: error: --tiny-gain: not an option of the headsplat method"
    assert not (tmp_path / "h.avatar").exists()
    assert main(["-q", "render", str(out), "-o", str(tmp_path / "s.png"), "--tiny-gain", "2", "--size", "8"]) == 0
    img = np.asarray(Image.open(tmp_path / "s.png"))
    assert img.shape == (8, 8, 3)


def test_unknown_method_is_named():
    with pytest.raises(ArgumentError, match="unknown method 'nope'; choose headsplat, ") as e:
        get_method("nope")
    assert e.value.param == "method"


def test_registering_a_clashing_option_is_refused():
    clash = Option("tiny_gain", "another meaning", 2.0)

    class Clash(TinyMethod):
        name = "clash"
        options = {"create": (clash,)}

    with pytest.raises(ValueError, match="declared differently"):
        register_method(Clash)
    assert "clash" not in method_names()
