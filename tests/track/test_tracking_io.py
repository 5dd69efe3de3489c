import json

import numpy as np
import pytest

from headsplat.core.errors import InputError
from headsplat.track.tracking import Tracking


def _tracking(n=3):
    rng = np.random.default_rng(0)
    return Tracking(rig="open", width=64, height=48, fps=25.0, focal=80.0,
                    identity=rng.normal(size=(478, 3)).astype(np.float32), identity_scale=1.02,
                    expression_names=("a", "b"), rotation=rng.normal(size=(n, 3)).astype(np.float32),
                    translation=rng.normal(size=(n, 3)).astype(np.float32),
                    expression=rng.normal(size=(n, 2)).astype(np.float32),
                    landmarks=rng.normal(size=(n, 478, 3)).astype(np.float32), found=np.array([1, 0, 1], bool),
                    fit_error=np.array([0.5, np.nan, 0.4], np.float32), crops=rng.normal(size=(n, 2, 3)),
                    crop_size=512, times=np.arange(n) / 25.0, source="x.mp4")


def test_save_load_round_trip_without_pickle(tmp_path):
    tr = _tracking()
    p = tmp_path / "a.track"
    tr.save(p)
    assert [f.name for f in tmp_path.iterdir()] == ["a.track"]
    with np.load(p, allow_pickle=False) as d:
        header = json.loads(bytes(d["header"]).decode())
    assert header["format"] == "headsplat.tracking" and header["n_frames"] == 3
    back = Tracking.load(p)
    for k in ("identity", "rotation", "translation", "expression", "landmarks", "found", "crops", "times"):
        assert np.array_equal(getattr(back, k), getattr(tr, k)), k
    assert np.array_equal(back.fit_error, tr.fit_error, equal_nan=True)
    assert back.expression_names == ("a", "b") and back.focal == 80.0 and back.n_missing == 1
    cam = back.camera()
    assert cam.K[0, 2].item() == 32 and cam.viewmat[1, 1].item() == -1


def test_load_errors(tmp_path):
    with pytest.raises(InputError, match="nope.track: tracking file not found"):
        Tracking.load(tmp_path / "nope.track")
    (tmp_path / "bad.track").write_bytes(b"PK\x03\x04broken")
    with pytest.raises(InputError, match="bad.track: not a headsplat tracking file"):
        Tracking.load(tmp_path / "bad.track")
    np.savez(tmp_path / "other.npz", header=np.frombuffer(json.dumps({"format": "x"}).encode(), np.uint8))
    with pytest.raises(InputError, match="other.npz: not a headsplat tracking file"):
        Tracking.load(tmp_path / "other.npz")
    tr = _tracking()
    tr.save(tmp_path / "new.track")
    with np.load(tmp_path / "new.track") as d:
        arrays = dict(d)
    h = json.loads(bytes(arrays["header"]).decode())
    h["version"] = 99
    arrays["header"] = np.frombuffer(json.dumps(h).encode(), np.uint8)
    with open(tmp_path / "newer.track", "wb") as f:
        np.savez(f, **arrays)
    with pytest.raises(InputError, match="newer.track: tracking format version 99 is newer"):
        Tracking.load(tmp_path / "newer.track")


def test_shots_round_trip_and_default(tmp_path):
    from dataclasses import replace

    tr = replace(_tracking(), shots=np.array([0, 1, 1], np.int32))
    tr.save(tmp_path / "s.track")
    back = Tracking.load(tmp_path / "s.track")
    assert back.shots.tolist() == [0, 1, 1] and back.n_shots == 2
    assert _tracking().shots.tolist() == [0, 0, 0]  # no cuts recorded: one shot
