"""animate / render / export on real and rendered inputs, driven by videos with known parameters."""

import numpy as np
import pytest
import torch

from headsplat import api
from headsplat.avatar.animate import retarget
from headsplat.avatar.avatar import load_avatar
from headsplat.avatar.create import head_region
from headsplat.avatar.losses import psnr
from headsplat.cli.main import main
from headsplat.core.errors import ArgumentError
from headsplat.core.rotation import axis_angle_to_matrix
from headsplat.media.frames import open_frames
from headsplat.media.video import probe_video
from headsplat.splat.ply import read_ply
from headsplat.track.tracking import Tracking


def _corr(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.corrcoef(a, b)[0, 1])


def test_retarget_is_relative_to_the_drivers_first_frame(astro_avatar):
    av = load_avatar(astro_avatar)
    e = torch.zeros(3, av.expression.shape[0])
    e[:, 0] = torch.tensor([0.7, 0.7, 1.2])  # the driver starts with its jaw open
    rot = torch.tensor([[0.0, 0.3, 0.0], [0.0, 0.3, 0.0], [0.0, 0.5, 0.0]])
    tr = torch.tensor([[0.0, 0.0, -0.5]] * 3)
    m = retarget(av, e, rot, tr)
    assert torch.allclose(m.expression[0], av.expression)
    assert torch.allclose(m.expression[2, 0], av.expression[0] + 0.5)
    assert torch.allclose(m.rotation[0], av.rotation, atol=1e-6)
    m2 = retarget(av, e, rot, tr, pose="absolute", expression_scale=0.5)
    assert torch.allclose(m2.rotation, rot) and torch.allclose(m2.expression[2, 0], av.expression[0] + 0.25)
    with pytest.raises(ArgumentError, match="pose: unknown value 'sideways'; choose relative, absolute or none"):
        retarget(av, e, rot, tr, pose="sideways")



def test_retarget_carries_face_offsets_relative_to_each_shots_first_frame(astro_avatar):
    """The driver's free face offsets reach the avatar relative to each shot's anchor, scaled with the
    expression, moved onto the avatar's neutral face; the posed avatar's face vertices move by them."""
    from headsplat.avatar.avatar import pose_avatar, posed_vertices
    from headsplat.rig.factory import make_rig
    from headsplat.rig.transfer import transfer_offsets

    av = load_avatar(astro_avatar)
    rig = make_rig(av.rig)
    rng = np.random.default_rng(0)
    off = torch.from_numpy(rng.normal(size=(4, 478, 3)) * 1e-3).float()
    e, rot = torch.zeros(4, av.expression.shape[0]), torch.zeros(4, 3)
    tr = torch.tensor([[0.0, 0.0, -0.5]] * 4)
    shots = np.array([0, 0, 1, 1])
    m = retarget(av, e, rot, tr, offsets=off, shots=shots, expression_scale=0.5)
    assert torch.allclose(m.offsets[0], torch.zeros(478, 3)) and torch.allclose(m.offsets[2], torch.zeros(478, 3))
    assert torch.allclose(m.offsets[3], 0.5 * (off[3] - off[2]), atol=1e-7)  # the avatar's own neutral
    driver_identity = torch.from_numpy(rng.normal(size=(478, 3)) * 2e-3).float()
    crossed = retarget(av, e, rot, tr, offsets=off, driver_identity=driver_identity)
    want = transfer_offsets((off[1] - off[0]).double(), driver_identity.double(), av.identity.double()).float()
    assert torch.allclose(crossed.offsets[1], want, atol=1e-7)
    assert not torch.allclose(crossed.offsets[1], off[1] - off[0], atol=1e-5)
    with torch.no_grad():
        plain = posed_vertices(av, rig, **{**m.frame(3), "offsets": None})
        moved = posed_vertices(av, rig, **m.frame(3))
        gs = pose_avatar(av, rig, **m.frame(3))
    R = axis_angle_to_matrix(m.rotation[3])
    assert torch.allclose((moved - plain)[:478], av.identity_scale * m.offsets[3] @ R.T, atol=1e-6)
    assert not torch.allclose(gs.means, pose_avatar(av, rig, m.expression[3], m.rotation[3], m.translation[3]).means)
    assert retarget(av, e, rot, tr).offsets is None


def _eye_opening(landmarks: np.ndarray) -> np.ndarray:
    """(T,) lid gap of both eyes over the inter-ocular distance, from (T, 478, 3) landmarks."""
    from headsplat.face import indices as I

    gap = sum(np.abs(landmarks[:, up, 1].mean(1) - landmarks[:, low, 1].mean(1))
              for up, low in ((I.LEFT_EYE_UPPER, I.LEFT_EYE_LOWER), (I.RIGHT_EYE_UPPER, I.RIGHT_EYE_LOWER)))
    return gap / I.interocular(landmarks[..., :2])


def test_animation_follows_the_driver(astro_avatar, posed_video, posed_track, tmp_path):
    """Drive the avatar with known jaw opening, head yaw and blinks; track the output video; compare.

    The driver is the tracking of a video rendered with known controls, with its blink coefficients set to
    the known blinks (the tracker under-reads blinks on that synthetic video, a tracker matter, not this one).
    """
    video, truth, controls = posed_video
    driver = Tracking.load(posed_track)
    names = list(driver.expression_names)
    for side in ("blink_left", "blink_right"):
        driver.expression[:, names.index(side)] = controls[side]
    driver.save(tmp_path / "driver.track")
    out = tmp_path / "driven.mp4"
    assert main(["-q", "animate", str(astro_avatar), "--driver", str(tmp_path / "driver.track"), "-o", str(out)]) == 0
    info = probe_video(out)
    assert info.n_frames == len(truth.expression) and info.fps == pytest.approx(truth.fps)
    tracked = api.track(out, tmp_path / "driven.track", quiet=True)
    jaw = _corr(tracked.expression[:, names.index("jaw_open")], controls["jaw_open"])
    from headsplat.core.rotation import axis_angle_to_matrix, matrix_to_euler_yxz
    yaw = matrix_to_euler_yxz(axis_angle_to_matrix(torch.from_numpy(tracked.rotation)))[:, 0].numpy()
    yaw_corr = _corr(yaw, controls["head_yaw"])
    blink_corr = _corr(_eye_opening(tracked.landmarks), controls["blink_left"])
    print(f"correlation with the known driver: jaw {jaw:.3f}, yaw {yaw_corr:.3f}, "
          f"eye opening vs blink {blink_corr:.3f}")
    assert jaw > 0.8 and yaw_corr > 0.9 and blink_corr < -0.5
    assert isinstance(Tracking.load(tmp_path / "driven.track"), Tracking)


def test_paste_back_self_reenactment_beats_the_static_frame(posed_video, posed_track, tmp_path):
    """Avatar from the first frame, driven by the whole video, pasted back; face-region PSNR vs the truth."""
    video, truth, controls = posed_video
    frames = [f.rgb for f in open_frames(video)]
    first = tmp_path / "first.png"
    from headsplat.media.image import write_png
    write_png(first, frames[0])
    api.create(first, tmp_path / "self.avatar", quiet=True)
    out = tmp_path / "reenact"
    api.animate(tmp_path / "self.avatar", video, out, paste_back=True, quiet=True)
    produced = sorted(out.glob("*.png"))
    assert len(produced) == len(frames)
    tracking = Tracking.load(posed_track)
    from headsplat.media.image import read_image
    from headsplat.rig.open_rig import OpenRig
    rig = OpenRig()
    ours, static = [], []
    for t in range(1, len(frames)):
        p = tracking.params([t])
        with torch.no_grad():
            verts = rig(p["identity"], p["scale"], p["expression"][0], p["rotation"][0], p["translation"][0]).vertices
        cam = tracking.camera()
        mask = torch.from_numpy(head_region(verts[:478], cam, grow=0.0))
        gt = torch.from_numpy(frames[t]).float() / 255
        ours.append(psnr(read_image(produced[t]), gt, mask))
        static.append(psnr(torch.from_numpy(frames[0]).float() / 255, gt, mask))
    print(f"face-region PSNR: paste-back {np.mean(ours):.2f} dB, first frame unchanged {np.mean(static):.2f} dB")
    assert np.mean(ours) > np.mean(static) + 3.0


def test_render_orbit_still_and_export(astro_avatar, tmp_path, posed_video, posed_track):
    assert main(["-q", "render", str(astro_avatar), "--orbit", "--frames", "12", "--size", "128",
                 "-o", str(tmp_path / "orbit.mp4")]) == 0
    info = probe_video(tmp_path / "orbit.mp4")
    assert info.n_frames == 12 and info.width == 128
    assert main(["-q", "render", str(astro_avatar), "--yaw", "40", "-o", str(tmp_path / "side.png")]) == 0
    assert main(["-q", "export", str(astro_avatar), "--ply", str(tmp_path / "a.ply")]) == 0
    gs = read_ply(tmp_path / "a.ply")
    av = load_avatar(astro_avatar)
    assert len(gs) == len(av.gaussians)
    assert torch.allclose(gs.means, av.gaussians.means, atol=1e-5)  # the reference pose
    video, truth, _ = posed_video
    assert main(["-q", "export", str(astro_avatar), "--driver", str(posed_track), "--ply-sequence",
                 str(tmp_path / "seq")]) == 0
    assert len(list((tmp_path / "seq").glob("*.ply"))) == len(truth.expression)


@pytest.mark.parametrize("args, message", [
    (["--driver", "{mask}", "-o", "{tmp}/o.mp4"], "no face found in"),
    (["--driver", "{video}", "-o", "{tmp}/o.mp4", "--background", "transparent"], "transparent background needs PNG"),
    (["--driver", "{video}", "-o", "{tmp}/o.gif"], "must end in .mp4"),
    (["--driver", "{tmp}/missing.mp4", "-o", "{tmp}/o.mp4"], "missing.mp4: file not found"),
])
def test_animate_bad_input_is_one_line_and_writes_nothing(astro_avatar, insightface_dir, posed_video, tmp_path,
                                                          capsys, args, message):
    subs = {"mask": str(insightface_dir / "mask_white.jpg"), "tmp": str(tmp_path), "video": str(posed_video[0])}
    argv = ["-q", "animate", str(astro_avatar)] + [a.format(**subs) for a in args]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len([line for line in err if line.startswith("headsplat: error:")]) == 1
    assert message in err[-1]
    assert not list(tmp_path.glob("o.*")) and not list(tmp_path.glob(".o.*"))


def test_create_bad_input(tmp_path, capsys, insightface_dir, astronaut_path, monkeypatch):
    monkeypatch.delenv("HEADSPLAT_FLAME_MODEL", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    assert main(["-q", "create", str(insightface_dir / "mask_white.jpg"), "-o", str(tmp_path / "x.avatar")]) == 1
    assert "no face found" in capsys.readouterr().err
    assert main(["-q", "create", str(astronaut_path), "-o", str(tmp_path / "x.avatar"), "--rig", "flame"]) == 1
    assert "no FLAME model file given: pass --flame-model PATH" in capsys.readouterr().err
    assert main(["-q", "create", str(astronaut_path), "-o", str(tmp_path / "x.zip")]) == 1
    assert "must end in .avatar" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(["-q", "create", str(astronaut_path), "-o", str(tmp_path / "x.avatar"), "--device", "cuda"]) == 1
        assert "no CUDA GPU is visible" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == []
