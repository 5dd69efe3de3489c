"""Avatars with --rig flame, end to end through the CLI and API, on the trackable FLAME-layout test file;
FLAME and open-rig drivers driving each other's avatars."""

import json

import numpy as np
import pytest
import torch

from headsplat import api
from headsplat.cli.main import main


@pytest.fixture(scope="module")
def flame_env(flame_head_file, tmp_path_factory):
    """The FLAME file configured through $HEADSPLAT_FLAME_MODEL; the embedding cache in a temporary config
    folder (never the user's)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HEADSPLAT_FLAME_MODEL", str(flame_head_file))
        mp.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("config")))
        yield flame_head_file


@pytest.fixture(scope="module")
def flame_avatar(flame_env, astronaut_path, tmp_path_factory):
    path = tmp_path_factory.mktemp("flame_avatar") / "astro.avatar"
    assert main(["-q", "create", str(astronaut_path), "-o", str(path), "--rig", "flame"]) == 0
    return path


@pytest.fixture(scope="module")
def driver_tracks(flame_env, posed_video, posed_track, tmp_path_factory):
    d = tmp_path_factory.mktemp("drivers")
    api.track(posed_video[0], d / "flame.track", rig="flame", quiet=True)
    return posed_track, d / "flame.track"


def test_flame_avatar_binds_to_flame_and_its_mouth(flame_avatar, flame_env):
    from headsplat.avatar.avatar import load_avatar
    from headsplat.rig.flame.head import FlameHead

    av = load_avatar(flame_avatar)
    head = FlameHead.from_file(flame_env)
    meta = json.loads((flame_avatar / "avatar.json").read_text())
    assert av.rig == "flame" and meta["rig_record"]["flame"]["version"] == "FLAME 2023 Open"
    assert av.identity.shape == (head.n_shape,) and av.expression_names == head.expression_names
    parents = av.gaussians.parent
    n_flame, n_mouth = len(head.triangles), len(head.mouth_triangles)
    assert int(parents.max()) < n_flame + n_mouth and int((parents >= n_flame).sum()) > 100  # mouth interior
    assert av.info["psnr_foreground"] > 22.0, av.info


def test_flame_tracks_drive_both_rigs_and_open_tracks_drive_flame(flame_avatar, astro_avatar, driver_tracks,
                                                                  posed_video, tmp_path, flame_env):
    """The jaw of the posed video (open-rig controls) comes through whichever rig tracked the driver and
    whichever rig the avatar has: the FLAME head's mouth opening, the open rig's jaw_open after re-fitting."""
    from headsplat.core.camera import project_points
    from headsplat.eval.metrics import mouth_opening
    from headsplat.rig.flame.head import FlameHead
    from headsplat.rig.open_rig import OpenRig
    from headsplat.track.tracker import refit_tracking
    from headsplat.track.tracking import Tracking

    jaw_truth = posed_video[2]["jaw_open"]
    open_tr, flame_tr = (Tracking.load(p) for p in driver_tracks)
    head = FlameHead.from_file(flame_env)

    def flame_mouth(tr):
        """The fitted FLAME head's mouth opening (the FLAME-layout test file has a jaw-opening expression
        direction as well as the jaw joint: how a converged fit shares the opening between them is not the
        point)."""
        with torch.no_grad():
            lms = head.landmarks(**tr.params())
        cam = tr.camera()
        return mouth_opening(project_points(lms.double(), cam.viewmat.double(), cam.K.double())[0].numpy())

    assert flame_tr.rig == "flame" and np.corrcoef(flame_mouth(flame_tr), jaw_truth)[0, 1] > 0.9
    # FLAME tracking -> open rig and back, from the stored landmarks
    as_open = refit_tracking(flame_tr, OpenRig(), quiet=True)
    assert as_open.rig == "open"
    assert np.corrcoef(as_open.expression[:, 0], jaw_truth)[0, 1] > 0.9
    as_flame = refit_tracking(open_tr, head, quiet=True)
    assert np.corrcoef(flame_mouth(as_flame), jaw_truth)[0, 1] > 0.9
    # and through the commands: both avatars driven by the other rig's track
    for avatar, track in ((flame_avatar, driver_tracks[0]), (astro_avatar, driver_tracks[1])):
        out = tmp_path / f"{avatar.stem}.mp4"
        assert main(["-q", "animate", str(avatar), "--driver", str(track), "-o", str(out)]) == 0
        import imageio.v3 as iio

        frames = iio.imread(out, index=None)
        assert len(frames) == len(jaw_truth)
        # the mouth opens: frames with the jaw open differ from the first (closed) frame
        diff = np.abs(frames.astype(np.float32) - frames[:1]).mean(axis=(1, 2, 3))
        assert np.corrcoef(diff, jaw_truth + np.abs(posed_video[2]["head_yaw"]) / 20)[0, 1] > 0.3


def test_flame_avatar_needs_its_own_model_file(flame_avatar, flame_env, tmp_path, capsys, monkeypatch):
    from tests.conftest import write_flame_like_head

    other = write_flame_like_head(tmp_path / "generic_model.pkl", seed=1)
    assert main(["-q", "render", str(flame_avatar), "-o", str(tmp_path / "s.png"), "--flame-model", str(other)]) == 1
    assert "made with another FLAME file (FLAME 2023 Open" in capsys.readouterr().err
    monkeypatch.delenv("HEADSPLAT_FLAME_MODEL")
    assert main(["-q", "render", str(flame_avatar), "-o", str(tmp_path / "s.png")]) == 1
    assert "no FLAME model file given" in capsys.readouterr().err
    assert not (tmp_path / "s.png").exists()
    # with the right file, every command works: a still and a PLY
    assert main(["-q", "render", str(flame_avatar), "-o", str(tmp_path / "s.png"), "--yaw", "30",
                 "--flame-model", str(flame_env)]) == 0
    assert main(["-q", "export", str(flame_avatar), "--ply", str(tmp_path / "a.ply"),
                 "--flame-model", str(flame_env)]) == 0
    from headsplat.splat.ply import read_ply

    assert len(read_ply(tmp_path / "a.ply")) == json.loads((flame_avatar / "avatar.json").read_text())["n_gaussians"]


def test_flame_tracking_file_round_trip(driver_tracks):
    from headsplat.track.tracking import Tracking

    tr = Tracking.load(driver_tracks[1])
    assert tr.extra["flame"]["sha1"] and tr.identity.ndim == 1
    assert tr.expression_names[-9:] == ("jaw_rx", "jaw_ry", "jaw_rz", "eye_l_rx", "eye_l_ry", "eye_l_rz",
                                        "eye_r_rx", "eye_r_ry", "eye_r_rz")
    assert torch.isfinite(torch.from_numpy(tr.expression)).all()
