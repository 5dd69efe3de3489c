"""Portrait4D-v2 avatars end to end through the CLI (create, animate, render, generate, eval) with a tiny network
of the same code and a random PD-FGC encoder, on the trackable FLAME-layout test file: what the avatar stores is
what the network was given, drives reproduce, and the refusals name what to do."""

import json

import numpy as np
import pytest
import torch

from headsplat.cli.main import main
from headsplat.media.image import read_image_uint8


@pytest.fixture(scope="module")
def made(portrait4d_avatar):
    return portrait4d_avatar


@pytest.fixture(scope="module")
def driver(posed_video, tmp_path_factory):
    """Frames 0, 2, 4 of the posed astronaut video as a folder of PNGs (its head turns)."""
    from PIL import Image

    from headsplat.media.frames import open_frames

    folder = tmp_path_factory.mktemp("p4d_driver")
    for f in open_frames(posed_video[0]):
        if f.index > 4:
            break
        if f.index % 2 == 0:
            Image.fromarray(f.rgb).save(folder / f"{f.index:03d}.png")
    return folder


def _flags(opts: dict) -> list[str]:
    return [a for k, v in opts.items() for a in ("--" + k.replace("_", "-"), str(v))]


def test_the_avatar_holds_the_network_inputs_of_the_photo(made, astronaut_path, tiny_portrait4d):
    """source.png is the reference's aligned crop of the photo (five points from the landmarks) and the stored
    motion code is PD-FGC's on it."""
    from headsplat.avatar.portrait4d import driver_frame, load_portrait4d, motion_codes
    from headsplat.face.landmarks import LandmarkDetector
    from headsplat.models.portrait4d.motion import FanEncoder

    path, _ = made
    meta = json.loads((path / "avatar.json").read_text())
    assert meta["method"] == "portrait4d" and meta["rig"] == "flame" and len(meta["weights_sha256"]) == 64
    assert meta["config"]["sizes"]["canonical_dims"] == 64 and len(meta["info"]["flame_offset"]) == 3
    av = load_portrait4d(path)
    assert av.source.shape == (512, 512, 3) and read_image_uint8(path / "preview.png").shape == (512, 512, 3)
    photo = read_image_uint8(astronaut_path)
    frame = driver_frame(photo, LandmarkDetector(mode="image")(photo).points)
    assert np.abs(frame.image.astype(int) - av.source).mean() < 1.0  # the tracker's landmarks, same detector
    enc = FanEncoder.from_pretrained(tiny_portrait4d[1])
    assert enc.ignored_keys == ["audio_encoder.unused"]
    motion = motion_codes(enc, [frame], "cpu")[0]
    torch.testing.assert_close(motion, av.motion, atol=1e-4, rtol=1e-4)


def test_animate_is_reproducible_and_frames_are_the_aligned_crop(made, driver, tmp_path):
    path, opts = made
    for name in ("a", "b"):  # (the same frames: tracking smooths over the frames it is given)
        assert main(["-q", "animate", str(path), "--driver", str(driver), "-o", str(tmp_path / name),
                     *_flags(opts), "--max-frames", "2"]) == 0
    a, b = (sorted((tmp_path / name).glob("*.png")) for name in ("a", "b"))
    assert len(a) == len(b) == 2
    first = [read_image_uint8(f) for f in a]
    assert first[0].shape == (512, 512, 3) and first[0].std() > 0
    for fa, fb in zip(first, b):  # run to run, the same
        assert np.array_equal(fa, read_image_uint8(fb))
    assert not np.array_equal(first[0], first[1])  # the head turned between the frames


def test_refusals_name_what_to_do(made, driver, tmp_path, capsys):
    from conftest import write_flame_like_head

    path, opts = made
    drv_track = tmp_path / "d.track"
    assert main(["-q", "track", str(driver), "-o", str(drv_track)]) == 0
    capsys.readouterr()
    assert main(["-q", "animate", str(path), "--driver", str(drv_track), "-o", str(tmp_path / "x.mp4"),
                 *_flags(opts)]) == 1
    assert "driven by images" in capsys.readouterr().err and not (tmp_path / "x.mp4").exists()
    other = write_flame_like_head(tmp_path / "other_flame.pkl", seed=5)
    bad = {**opts, "flame_model": str(other)}
    assert main(["-q", "render", str(path), "-o", str(tmp_path / "s.png"), *_flags(bad)]) == 1
    assert "another FLAME file" in capsys.readouterr().err
    assert main(["-q", "create", str(tmp_path / "nope.png"), "--method", "portrait4d", "-o",
                 str(tmp_path / "n.avatar"), *_flags({**opts, "motion_weights": str(tmp_path / "none.pth")})]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and not (tmp_path / "n.avatar").exists()


def test_a_network_trained_on_another_flame_is_refused(tiny_portrait4d, astronaut_path, tmp_path, capsys):
    from conftest import write_flame_like_head

    weights, motion = tiny_portrait4d
    other = write_flame_like_head(tmp_path / "other_flame.pkl", seed=5)
    assert main(["-q", "create", str(astronaut_path), "--method", "portrait4d", "--weights", str(weights),
                 "--motion-weights", str(motion), "--flame-model", str(other), "-o", str(tmp_path / "a.avatar")]) == 1
    assert "not the FLAME model the network was trained with" in capsys.readouterr().err
    assert not (tmp_path / "a.avatar").exists()


def test_generate_writes_views_whose_cameras_the_track_reproduces(made, tmp_path):
    from headsplat import api
    from headsplat.avatar.viewset import read_view_set

    path, opts = made
    out = tmp_path / "views"
    api.generate(path, out, model="portrait4d", yaws=(-40, 0, 40), pitches=(0,), size=128, quiet=True, **opts)
    vs = read_view_set(out)
    assert vs.generator["name"] == "portrait4d" and vs.tracking.rig == "flame" and len(vs) == 3
    img, matte = vs.load(0)
    assert img.shape == (128, 128, 3) and matte is not None
    # the camera's yaw is the head's opposite rotation in the track, at the orbit camera's distance / 3
    np.testing.assert_allclose(np.degrees(vs.tracking.rotation[:, 1]), [40, 0, -40], atol=1e-3)
    dist = np.linalg.norm(vs.tracking.translation, axis=1) / vs.tracking.identity_scale
    assert np.ptp(dist) < 0.2 and 1.0 < dist.mean() < 1.8
    assert vs.tracking.focal == pytest.approx(128 / (2 * np.tan(np.radians(6))), rel=1e-5)


@pytest.mark.slow
def test_generate_with_a_driver_labels_each_view_with_its_frame_expression(made, driver, tmp_path):
    from headsplat import api
    from headsplat.avatar.viewset import read_view_set
    from headsplat.media.frames import open_frames
    from headsplat.rig.flame.head import FlameHead
    from headsplat.track.tracker import track_source

    path, opts = made
    out = tmp_path / "views"
    api.generate(path, out, model="portrait4d", yaws=(0,), pitches=(0,), size=64, quiet=True, driver=driver,
                 driver_frames=2, **opts)
    vs = read_view_set(out)
    assert len(vs) == 2 and vs.generator["expressions"] == 2
    tracked = track_source(open_frames(driver).first(2), rig=FlameHead.from_file(opts["flame_model"]), quiet=True)
    np.testing.assert_allclose(vs.tracking.expression, tracked.expression, atol=1e-5)
    assert not np.array_equal(vs.load(0)[0], vs.load(1)[0])


def test_eval_cross_with_portrait4d(made, driver, tmp_path):
    path, opts = made
    cross = tmp_path / "cross"
    assert main(["-q", "eval", "cross", "--source", str(path), "--driver", str(driver), "-o", str(cross),
                 "--method", "portrait4d", *_flags(opts), "--max-frames", "2"]) == 0
    report = json.loads((cross / "report.json").read_text())
    assert report["settings"]["method"] == "portrait4d" and len(report["frames"]) == 2


@pytest.mark.slow
def test_eval_reenact_with_portrait4d(made, driver, tmp_path):
    _, opts = made
    rep = tmp_path / "self"
    assert main(["-q", "eval", "reenact", str(driver), "-o", str(rep), "--method", "portrait4d",
                 *_flags(opts), "--max-frames", "2"]) == 0
    report = json.loads((rep / "report.json").read_text())
    assert report["settings"]["method"] == "portrait4d" and report["frames"] == [1, 2]
    assert (rep / "avatar.avatar" / "source.png").is_file()


def test_doctor_names_both_files(tiny_portrait4d, tmp_path, capsys):
    weights, motion = tiny_portrait4d
    assert main(["doctor", "--weights", str(motion)]) == 0
    assert "PD-FGC motion encoder checkpoint, layout complete" in capsys.readouterr().out
    assert main(["doctor", "--weights", str(weights)]) == 1  # a tiny network: not the released sizes
    out = capsys.readouterr().out
    assert "Portrait4D-v2 checkpoint with" in out and "wrong shape" in out


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_renders_what_the_cpu_renders(made, tmp_path):
    path, opts = made
    outs = {}
    for dev in ("cpu", "cuda"):
        assert main(["-q", "render", str(path), "-o", str(tmp_path / f"{dev}.png"), "--yaw", "20", *_flags(opts),
                     "--device", dev]) == 0
        outs[dev] = read_image_uint8(tmp_path / f"{dev}.png").astype(int)
    assert np.abs(outs["cpu"] - outs["cuda"]).mean() < 1.0
