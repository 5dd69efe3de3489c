"""The tracking steps that treat frames independently give the same numbers a chunk at a time as for the whole
video at once (their memory is a chunk's: benchmarks/long_video.py)."""

import copy

import numpy as np
import torch

from headsplat.core import chunks as chunking
from headsplat.track.fit import fit_landmarks
from headsplat.track.offsets import fold_into_shapes
from tests.track.test_fit import H, W, _landmarks


def test_chunks_cover_the_frames_in_order():
    assert [(s.start, s.stop) for s in chunking.chunks(11, 4)] == [(0, 4), (4, 8), (8, 11)]
    assert list(chunking.chunks(0)) == []


def test_the_fit_and_the_folding_are_the_same_in_chunks(rig, monkeypatch):
    n = 13
    t = np.arange(n) / 25
    controls = {"head_yaw": 20 * np.sin(2 * np.pi * t), "jaw_open": 0.5 + 0.5 * np.sin(5 * t),
                "blink_left": (t > 0.3).astype(float)}
    lm, _, _ = _landmarks(rig, controls, n, noise_px=0.3)
    found = np.ones(n, bool)
    found[5] = False
    monkeypatch.setattr(chunking, "FRAME_CHUNK", 10 ** 6)
    whole = fit_landmarks(lm, found, W, H, rig, temporal=True)
    g = torch.Generator().manual_seed(0)
    offsets = (torch.randn(n, 478, 3, generator=g) * 1e-3).numpy()
    folded_whole = fold_into_shapes(rig, np.zeros((478, 3)), 1.0, whole.expression, offsets, whole.rotation)
    monkeypatch.setattr(chunking, "FRAME_CHUNK", 4)  # 13 frames: 4 chunks, one with the missing face
    parts = fit_landmarks(lm, found, W, H, copy.deepcopy(rig), temporal=True)
    for k in ("rotation", "translation", "expression", "fit_error", "reprojected"):
        np.testing.assert_array_equal(getattr(parts, k), getattr(whole, k), err_msg=k)
    for a, b in zip(fold_into_shapes(rig, np.zeros((478, 3)), 1.0, whole.expression, offsets, whole.rotation),
                    folded_whole):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-9)


def test_nearest_found_frame_is_the_table_argmin():
    from headsplat.track.fit import nearest_found

    rng = np.random.default_rng(0)
    for _ in range(50):
        found = rng.random(int(rng.integers(1, 40))) < 0.4
        found[rng.integers(len(found))] = True
        idx = np.flatnonzero(found)
        table = idx[np.abs(np.arange(len(found))[:, None] - idx[None]).argmin(1)]  # ties: the earlier frame
        np.testing.assert_array_equal(nearest_found(found), table)


def test_a_drivers_face_offsets_transfer_the_same_in_chunks(monkeypatch):
    from types import SimpleNamespace

    from headsplat.avatar.animate import retarget

    g = torch.Generator().manual_seed(1)
    n, e = 11, 5
    small = lambda *shape: torch.randn(*shape, generator=g) * 1e-3  # noqa: E731
    avatar = SimpleNamespace(rig="open", expression=torch.zeros(e), rotation=torch.zeros(3),
                             translation=torch.tensor([0.0, 0.0, -0.6]), identity=small(478, 3))
    args = (torch.randn(n, e, generator=g), small(n, 3) * 100, small(n, 3) * 10)
    kw = dict(offsets=small(n, 478, 3), driver_identity=small(478, 3), shots=np.array([0] * 6 + [1] * 5),
              expression_scale=0.8)
    monkeypatch.setattr(chunking, "FRAME_CHUNK", 10 ** 6)
    whole = retarget(avatar, *args, **kw).offsets
    monkeypatch.setattr(chunking, "FRAME_CHUNK", 4)
    parts = retarget(avatar, *args, **kw).offsets
    assert whole.shape == (n, 478, 3) and whole.abs().max() > 0
    torch.testing.assert_close(parts, whole, rtol=0, atol=0)
