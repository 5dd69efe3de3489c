"""Shared fixtures: real test images (skimage's astronaut, the insightface wheel's samples) and a video
rendered from a fitted rig with known parameters."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / ".test-assets" / "insightface"


@pytest.fixture(scope="session")
def insightface_dir() -> Path:
    if not (ASSETS / "Tom_Hanks_54745.png").is_file():
        pytest.fail(f"test images missing in {ASSETS}: run `make test` (it extracts them from the insightface wheel)")
    return ASSETS


@pytest.fixture(scope="session")
def astronaut_path(tmp_path_factory) -> Path:
    from PIL import Image
    from skimage import data

    p = tmp_path_factory.mktemp("img") / "astronaut.png"
    Image.fromarray(data.astronaut()).save(p)
    return p


@pytest.fixture(scope="session")
def rig():
    from headsplat.rig.open_rig import OpenRig

    return OpenRig()


@pytest.fixture(scope="session")
def posed_video(tmp_path_factory, rig):
    """A 48-frame 512x512 video of the astronaut re-posed with known controls: (path, ground truth, controls)."""
    from skimage import data

    from headsplat.api import render_posed_photo

    n = 48
    t = np.arange(n) / 25.0
    controls = {
        "head_yaw": (20 * np.sin(2 * np.pi * t / 1.92)).astype(np.float32),
        "head_pitch": (8 * np.sin(2 * np.pi * t / 0.96)).astype(np.float32),
        "head_roll": (5 * np.cos(2 * np.pi * t / 1.92)).astype(np.float32),
        "jaw_open": np.clip(np.sin(2 * np.pi * t / 0.64), 0, None).astype(np.float32) * 0.8,
        "blink_left": (np.abs(t - 1.0) < 0.12).astype(np.float32),
        "blink_right": (np.abs(t - 1.0) < 0.12).astype(np.float32),
    }
    path = tmp_path_factory.mktemp("video") / "posed.mp4"
    truth = render_posed_photo(data.astronaut(), path, controls=controls, fps=25.0, quiet=True, rig=rig)
    return path, truth, controls


@pytest.fixture(scope="session")
def astro_avatar(tmp_path_factory, astronaut_path):
    """An avatar created with the default preset from the astronaut portrait, through the public API."""
    from headsplat import api

    path = tmp_path_factory.mktemp("avatar") / "astro.avatar"
    api.create(astronaut_path, path, quiet=True)
    return path
