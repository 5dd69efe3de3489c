"""The command line as a user meets it: outputs, one-line errors, exit codes, nothing half-written."""

import subprocess
import sys

import numpy as np
import pytest

from headsplat.cli.main import main
from headsplat.media import VideoWriter
from headsplat.track import Tracking


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


def _run(capsys, *args):
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_track_photo_with_overlay(tmp_path, capsys, astronaut_path):
    code, out, err = _run(capsys, "-q", "track", str(astronaut_path), "-o", str(tmp_path / "a.track"),
                          "--overlay", str(tmp_path / "a.png"))
    assert code == 0, err
    assert "tracked 1 frame(s)" in out and (tmp_path / "a.png").is_file()
    tr = Tracking.load(tmp_path / "a.track")
    assert tr.found.all() and tr.width == 512 and tr.rig == "open"
    iod = np.linalg.norm(tr.landmarks[0, [33, 133]].mean(0)[:2] - tr.landmarks[0, [263, 362]].mean(0)[:2])
    assert tr.fit_error[0] / iod < 0.03


def test_fixed_fov(tmp_path, capsys, astronaut_path):
    code, _, err = _run(capsys, "-q", "track", str(astronaut_path), "-o", str(tmp_path / "a.track"), "--fov", "40")
    assert code == 0, err
    assert Tracking.load(tmp_path / "a.track").camera().fov_x_deg == pytest.approx(40, abs=1e-4)


@pytest.mark.parametrize("make,message", [
    (lambda d: d / "missing.jpg", "missing.jpg: file not found"),
    (lambda d: _write(d / "empty.jpg", b""), "empty.jpg: file is empty"),
    (lambda d: _write(d / "bad.png", b"\x89PNG\r\n\x1a\nnope"), "bad.png: not a readable image"),
    (lambda d: _write(d / "x.txt", b"hi"), "x.txt: unsupported file type"),
    (lambda d: _write(d / "bad.mp4", b"nothing"), "bad.mp4: not a readable video"),
])
def test_bad_inputs_one_line_error_no_output(tmp_path, capsys, make, message):
    inp = make(tmp_path)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    code, _, err = _run(capsys, "-q", "track", str(inp), "-o", str(out_dir / "o.track"), "--overlay",
                        str(out_dir / "o.mp4"))
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("headsplat: error:") and message in lines[0], err
    assert list(out_dir.iterdir()) == []


def test_no_face_in_image(tmp_path, capsys, insightface_dir):
    code, _, err = _run(capsys, "-q", "track", str(insightface_dir / "mask_white.jpg"), "-o", str(tmp_path / "o.track"))
    assert code == 1 and "no face found in" in err and "mask_white.jpg" in err
    assert not (tmp_path / "o.track").exists()


def test_video_without_any_face_and_with_some_missing_faces(tmp_path, capsys, posed_video):
    blank = tmp_path / "blank.mp4"
    with VideoWriter(blank, fps=25) as w:
        for _ in range(5):
            w.write(np.full((128, 128, 3), 90, np.uint8))
    code, _, err = _run(capsys, "-q", "track", str(blank), "-o", str(tmp_path / "b.track"))
    assert code == 1 and f"no face found in any frame of {blank}" in err
    assert not (tmp_path / "b.track").exists()

    # frames 3..5 replaced by grey: reported, marked, interpolated
    from headsplat.media import VideoReader

    gappy = tmp_path / "gappy.mp4"
    with VideoWriter(gappy, fps=25) as w:
        for i, (_, f) in enumerate(VideoReader(posed_video[0])):
            if i >= 12:
                break
            w.write(np.full_like(f, 90) if 3 <= i <= 5 else f)
    code, _, err = _run(capsys, "-q", "track", str(gappy), "-o", str(tmp_path / "g.track"))
    assert code == 0 and "warning: " in err and "no face in 3 of 12 frames" in err
    tr = Tracking.load(tmp_path / "g.track")
    assert list(np.flatnonzero(~tr.found)) == [3, 4, 5]
    assert np.isfinite(tr.rotation).all()
    # interpolated poses lie between their neighbours
    lo, hi = np.minimum(tr.rotation[2], tr.rotation[6]) - 0.05, np.maximum(tr.rotation[2], tr.rotation[6]) + 0.05
    assert ((tr.rotation[3:6] >= lo) & (tr.rotation[3:6] <= hi)).all()


def test_unwritable_output(tmp_path, capsys, astronaut_path):
    code, _, err = _run(capsys, "-q", "track", str(astronaut_path), "-o", str(tmp_path / "nodir" / "o.track"))
    assert code == 1 and "output folder" in err and "does not exist" in err
    code, _, err = _run(capsys, "-q", "track", str(astronaut_path), "-o", str(tmp_path / "o.txt"))
    assert code == 1 and "must end in .track" in err


def test_doctor_and_console_script():
    r = subprocess.run([sys.executable, "-m", "headsplat", "doctor"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "face model face_landmark_with_attention" in r.stdout and "from mediapipe 0.10.14" in r.stdout
    assert r.stderr == ""


def test_an_existing_avatar_may_be_replaced_but_no_other_folder(tmp_path):
    from headsplat.api.common import check_output
    from headsplat.core.errors import OutputError

    old = tmp_path / "me.avatar"
    old.mkdir()
    (old / "avatar.json").write_text("{}")
    assert check_output(old, (".avatar",), "an avatar", replaces="avatar.json") == old
    other = tmp_path / "photos.avatar"
    other.mkdir()
    with pytest.raises(OutputError, match="exists and is not an avatar"):
        check_output(other, (".avatar",), "an avatar", replaces="avatar.json")
    assert other.is_dir()


def test_generate_and_views_errors(tmp_path, capsys, astronaut_path, astro_avatar):
    code, _, err = _run(capsys, "-q", "generate", str(astronaut_path), "-o", str(tmp_path / "views"))
    assert code == 1 and "renders a known avatar; give a .avatar folder" in err
    code, _, err = _run(capsys, "-q", "generate", str(astro_avatar), "-o", str(tmp_path / "v.png"))
    assert code == 1 and "a view set is a folder" in err
    code, _, err = _run(capsys, "-q", "create", str(astronaut_path), "-o", str(tmp_path / "a.avatar"),
                        "--views", str(tmp_path))
    assert code == 1 and "not a view set" in err and not (tmp_path / "a.avatar").exists()
    code, _, err = _run(capsys, "-q", "create", str(astronaut_path), "-o", str(tmp_path / "a.avatar"),
                        "--views-share", "1.5")
    assert code == 1 and "--views-share must be between 0 and 1" in err
    code, _, err = _run(capsys, "-q", "create", str(astronaut_path), "-o", str(tmp_path / "a.avatar"),
                        "--max-frames", "0")
    assert code == 1 and "--max-frames must be at least 1" in err
    code, _, err = _run(capsys, "-q", "create", str(astronaut_path), "-o", str(tmp_path / "a.avatar"),
                        "--fov", "200")
    assert code == 1 and "--fov: 200 degrees: a field of view is between 1 and 170 degrees" in err
    code, _, err = _run(capsys, "-q", "track", str(astronaut_path), "-o", str(tmp_path / "a.track"), "--fov", "0")
    assert code == 1 and "--fov: 0 degrees: a field of view" in err and not (tmp_path / "a.track").exists()
    code, _, err = _run(capsys, "-q", "create", "-o", str(tmp_path / "a.avatar"), "--views", str(tmp_path),
                        "--fov", "20")
    assert code == 1 and "--fov is the photos' camera; a view set alone keeps its own" in err
    assert not (tmp_path / "a.avatar").exists()


def test_create_with_a_known_field_of_view_tracks_the_photo_with_it(tmp_path, capsys, astronaut_path, monkeypatch):
    from headsplat.avatar.methods import fitted

    seen = {}

    def fit(images, indices, tracking, output, *args, **kwargs):  # the fit itself is tested elsewhere
        seen["fov"], seen["provenance"] = tracking.camera().fov_x_deg, args[4]
        raise SystemExit(0)

    monkeypatch.setattr(fitted, "fit_and_save", fit)
    with pytest.raises(SystemExit):
        main(["-q", "create", str(astronaut_path), "-o", str(tmp_path / "a.avatar"), "--fov", "25"])
    assert seen["fov"] == pytest.approx(25, abs=1e-4) and seen["provenance"]["fov"] == 25


def test_generate_oracle_views(tmp_path, capsys, astro_avatar):
    from headsplat.avatar.viewset import read_view_set

    code, out, err = _run(capsys, "-q", "generate", str(astro_avatar), "-o", str(tmp_path / "views"),
                          "--size", "96")
    assert code == 0, err
    vs = read_view_set(tmp_path / "views")
    assert len(vs) == 9 * 3 * 5 and set(vs.kinds) == {"generated"} and vs.generator["name"] == "oracle"
    img, matte = vs.load(4)  # yaw 0, pitch -20, neutral
    assert img.shape == (96, 96, 3) and matte is not None and matte[48, 48] > 0.99 and matte[0, 0] < 0.01
    yaw = np.degrees(vs.tracking.rotation[9:18, 1])  # pitch 0
    assert np.allclose(yaw, [-60, -45, -30, -15, 0, 15, 30, 45, 60], atol=0.5)


def _commands(parser, path=()):
    """Every command path of ``parser``: ("track",), ("eval", "reenact"), ..."""
    import argparse
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path
    for a in subs:
        for name, p in a.choices.items():
            yield from _commands(p, path + (name,))


def test_every_command_prints_its_help(capsys):
    from headsplat.cli.main import _parser
    commands = list(_commands(_parser()[0]))
    assert ("eval", "reenact") in commands and ("create",) in commands
    for command in commands:
        with pytest.raises(SystemExit) as stop:
            main([*command, "--help"])
        out = capsys.readouterr().out
        assert stop.value.code == 0 and out.startswith("usage: "), command
