"""GAGAvatar avatars end to end through the CLI (create, animate, render, generate, eval, doctor) with a tiny
network of the same code, on the trackable FLAME-layout test file; the tracking conventions against a real photo."""

import json

import numpy as np
import pytest
import torch

from headsplat.cli.main import main


@pytest.fixture(scope="module")
def env(flame_head_file, tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HEADSPLAT_FLAME_MODEL", str(flame_head_file))
        mp.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("config")))
        mp.delenv("HEADSPLAT_GAGAVATAR_WEIGHTS", raising=False)
        yield flame_head_file


@pytest.fixture(scope="module")
def head(env):
    from headsplat.rig.flame.head import FlameHead

    return FlameHead.from_file(env)


@pytest.fixture(scope="module")
def weights(tiny_gagavatar):
    """A tiny GAGAvatar checkpoint in the released file's structure (plus its config) for the test FLAME mesh."""
    return tiny_gagavatar[1]


@pytest.fixture(scope="module")
def gaga_avatar(env, tiny_gagavatar):
    """The astronaut's avatar made with it by ``headsplat create --method gagavatar``."""
    return tiny_gagavatar[0]


@pytest.fixture(scope="module")
def short_video(posed_video, tmp_path_factory):
    """The first 6 frames of the posed astronaut video."""
    from headsplat.media.frames import open_frames
    from headsplat.media.video import VideoWriter

    path = tmp_path_factory.mktemp("short") / "short.mp4"
    with VideoWriter(path, fps=25.0) as w:
        for f in open_frames(posed_video[0]):
            if f.index >= 6:
                break
            w.write(f.rgb)
    return path


@pytest.fixture(scope="module")
def driver_track(head, short_video, tmp_path_factory):
    """The short video tracked for GAGAvatar (FLAME at the reference's focal length), as a .track file."""
    from headsplat.avatar.gagavatar import track_for_model
    from headsplat.media.frames import open_frames

    path = tmp_path_factory.mktemp("track") / "short.track"
    track_for_model(open_frames(short_video), head, quiet=True).save(path)
    return path


def test_tracked_flame_head_through_the_converted_camera_lands_on_the_photo_landmarks(head, astronaut_path):
    """The issue's convention check: FLAME tracked by headsplat, × 5, seen through the reference camera
    converted from headsplat's, against the detected landmarks in the 512 px crop."""
    from headsplat.avatar.gagavatar import frame_view, track_for_model
    from headsplat.media.frames import open_frames
    from headsplat.models.gagavatar.conventions import FLAME_SCALE, render_camera

    tracking = track_for_model(open_frames(astronaut_path), head, quiet=True)
    crop, transform, fit_px = frame_view(head, tracking, 0, 512, 12.0)
    p = tracking.params([0])
    verts = head.flame_vertices(p["identity"], p["expression"])[0] * FLAME_SCALE
    lms = head._landmarks_from(verts[head.lmk_ids])[head.fit_points]
    cam = render_camera(transform, 512)
    x = lms @ cam.viewmat[:3, :3].T + cam.viewmat[:3, 3]
    uv = (x @ cam.K.T)[:, :2] / x[:, 2:]
    detected = crop.apply(tracking.landmarks[0][head.fit_points, :2])
    err = np.linalg.norm(uv.numpy() - detected, axis=-1).mean()
    print(f"landmark error in the 512 px crop: {err:.2f} px (camera conversion {fit_px:.2f} px)")
    assert fit_px < 0.6
    assert err < 3.0
    # the crop frames the head: landmarks well inside, face about 1/1.65 of the side
    assert detected.min() > 60 and detected.max() < 452


def test_create_stores_the_method_the_weights_hash_and_cached_gaussians(gaga_avatar, weights, astronaut_path):
    from headsplat.avatar.gagavatar import load_gagavatar
    from headsplat.models.weights import sha256_file

    meta = json.loads((gaga_avatar / "avatar.json").read_text())
    assert meta["method"] == "gagavatar" and meta["weights_sha256"] == sha256_file(weights)
    assert not any(p.stat().st_size > 5e6 for p in gaga_avatar.iterdir())  # never the weights
    av = load_gagavatar(gaga_avatar)
    cfg = av.config
    assert av.gaussians.xyz.shape == (1, cfg.n_vertices + 2 * cfg.plane_size ** 2, 3)
    assert av.source.shape == (32, 32, 3) and (gaga_avatar / "preview.png").is_file()
    # matted onto black: the top corners are background (the bottom ones hold the suit, foreground)
    assert av.source[[0, 0, 1, 1], [0, -1, 0, -1]].max() < 40


def test_animate_render_and_the_refiner_switch(gaga_avatar, weights, short_video, driver_track, tmp_path, capsys):
    from headsplat.media.frames import open_frames

    out = tmp_path / "anim.mp4"
    assert main(["-q", "animate", str(gaga_avatar), "--driver", str(short_video), "-o", str(out),
                 "--weights", str(weights), "--max-frames", "3"]) == 0
    assert len(list(open_frames(out))) == 3
    raw = tmp_path / "raw"
    # the raw render needs no weights
    assert main(["-q", "animate", str(gaga_avatar), "--driver", str(driver_track), "-o", str(raw), "--no-refiner",
                 "--max-frames", "2"]) == 0
    assert len(list(raw.glob("*.png"))) == 2
    assert main(["-q", "render", str(gaga_avatar), "-o", str(tmp_path / "orbit.mp4"), "--frames", "4",
                 "--weights", str(weights)]) == 0
    assert len(list(open_frames(tmp_path / "orbit.mp4"))) == 4
    assert main(["-q", "render", str(gaga_avatar), "-o", str(tmp_path / "still.png"), "--yaw", "40",
                 "--no-refiner", "--size", "64"]) == 0
    capsys.readouterr()
    # the refiner needs weights, and headsplat-only options are refused
    assert main(["-q", "animate", str(gaga_avatar), "--driver", str(short_video), "-o", str(tmp_path / "x.mp4")]) == 1
    assert "no GAGAvatar weights given: pass --weights FILE" in capsys.readouterr().err
    assert main(["-q", "animate", str(gaga_avatar), "--driver", str(short_video), "-o", str(tmp_path / "y.mp4"),
                 "--paste-back", "--no-refiner"]) == 1
    assert "--paste-back: not an option of the gagavatar method" in capsys.readouterr().err
    assert main(["-q", "export", str(gaga_avatar), "--ply", str(tmp_path / "a.ply")]) == 1
    assert "made with --method gagavatar" in capsys.readouterr().err
    assert not (tmp_path / "x.mp4").exists() and not (tmp_path / "a.ply").exists()


def test_other_weights_than_the_avatar_was_made_with_are_refused(gaga_avatar, weights, tmp_path, driver_track,
                                                                 capsys):
    other = tmp_path / "other.pt"
    obj = torch.load(weights, weights_only=True)
    obj["model"]["head_base"] = obj["model"]["head_base"] + 1
    torch.save(obj, other)
    assert main(["-q", "animate", str(gaga_avatar), "--driver", str(driver_track), "-o", str(tmp_path / "z.mp4"),
                 "--weights", str(other)]) == 1
    assert "not the weights this avatar was made with" in capsys.readouterr().err


def test_generate_writes_a_flame_view_set_that_create_reads(gaga_avatar, weights, tmp_path):
    from headsplat.avatar.viewset import read_view_set

    out = tmp_path / "views"
    assert main(["-q", "generate", str(gaga_avatar), "--model", "gagavatar", "--weights", str(weights),
                 "-o", str(out)]) == 0
    vs = read_view_set(out)
    assert vs.generator["name"] == "gagavatar" and vs.tracking.rig == "flame"
    assert len(vs) == 4 * 3 * 9  # expressions x pitches x yaws
    img, matte = vs.load(0)
    assert img.shape == (32, 32, 3) and matte is not None and matte.max() > 0.5
    # the views' cameras reproduce the generator's: the yaw grid shows up as head rotation
    yaws = np.degrees(vs.tracking.rotation[:9, 1])
    assert np.ptp(yaws) > 100


def test_doctor_names_the_model_and_its_layout_problems(weights, tmp_path, capsys):
    assert main(["doctor", "--weights", str(weights)]) == 1
    out = capsys.readouterr().out
    assert "GAGAvatar checkpoint with" in out and "missing keys" in out


def test_eval_cross_with_gagavatar(gaga_avatar, weights, short_video, tmp_path):
    rep = tmp_path / "cross"
    assert main(["-q", "eval", "cross", "--source", str(gaga_avatar), "--driver", str(short_video), "-o", str(rep),
                 "--method", "gagavatar", "--weights", str(weights), "--max-frames", "2"]) == 0
    report = json.loads((rep / "report.json").read_text())
    assert report["settings"]["method"] == "gagavatar" and len(report["frames"]) == 2
    assert (rep / "output.mp4").is_file()


@pytest.mark.slow
def test_eval_reenact_with_gagavatar(weights, short_video, tmp_path):
    rep = tmp_path / "self"
    assert main(["-q", "eval", "reenact", str(short_video), "-o", str(rep), "--method", "gagavatar",
                 "--weights", str(weights), "--max-frames", "2"]) == 0
    report = json.loads((rep / "report.json").read_text())
    assert report["settings"]["method"] == "gagavatar" and report["frames"] == [1, 2]
    assert (rep / "avatar.avatar" / "avatar.json").is_file()


def test_animation_is_reproducible_run_to_run(gaga_avatar, weights, driver_track, tmp_path):
    from headsplat.media.image import read_image_uint8

    for name in ("a", "b"):
        assert main(["-q", "animate", str(gaga_avatar), "--driver", str(driver_track), "-o", str(tmp_path / name),
                     "--weights", str(weights), "--max-frames", "2"]) == 0
    a, b = (sorted((tmp_path / name).glob("*.png")) for name in ("a", "b"))
    assert len(a) == len(b) == 2
    for fa, fb in zip(a, b):
        assert np.array_equal(read_image_uint8(fa), read_image_uint8(fb))
