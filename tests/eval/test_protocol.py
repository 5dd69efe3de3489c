import json

import numpy as np
import pytest

from headsplat.cli.main import main
from headsplat.media.video import VideoReader

pytest.importorskip("dlib", reason="the evaluation extra is not installed: pip install 'headsplat[eval]'")

N_EVAL = 6


@pytest.fixture(scope="module")
def reenact_report(tmp_path_factory, posed_video, astro_avatar):
    """Self-reenactment of the re-posed astronaut video by the astronaut avatar (made from the photo)."""
    out = tmp_path_factory.mktemp("eval") / "report"
    rc = main(["-q", "eval", "reenact", str(posed_video[0]), "--avatar-from", str(astro_avatar),
               "--max-frames", str(N_EVAL), "-o", str(out)])
    assert rc == 0
    return out


def test_reenact_writes_a_readable_report(reenact_report):
    names = {p.name for p in reenact_report.iterdir()}
    assert {"report.json", "report.md", "plot.png", "side_by_side.mp4", "output.mp4"} <= names
    rep = json.loads((reenact_report / "report.json").read_text())
    assert rep["protocol"] == "self" and rep["frames"] == list(range(N_EVAL))
    assert set(rep["summary"]) == {"headsplat", "source frame", "2D warp"}
    assert rep["environment"]["identity model"].startswith("dlib_face_recognition_resnet_model_v1")
    assert set(rep["timing_s"]) >= {"track", "evaluate", "total"}
    assert len(rep["per_frame"]["headsplat"]["psnr_face"]) == N_EVAL
    md = (reenact_report / "report.md").read_text()
    assert "| headsplat |" in md and "| 2D warp |" in md and "LPIPS: not computed" in md
    from PIL import Image

    assert Image.open(reenact_report / "plot.png").size[0] > 400
    frames = [f for _, f in VideoReader(reenact_report / "side_by_side.mp4")]
    assert len(frames) == N_EVAL
    h, w = frames[0].shape[:2]
    assert w == pytest.approx(3 * h, abs=4)  # ground truth | output | error, square panels


def test_reenact_figures_against_the_known_ground_truth(reenact_report):
    s = json.loads((reenact_report / "report.json").read_text())["summary"]
    ours, still = s["headsplat"], s["source frame"]
    # The avatar follows the known head motion; the unchanged source frame cannot.
    assert ours["psnr_face"] > still["psnr_face"] + 3
    assert ours["nme"] < 0.06 < still["nme"]
    # Measured 4.2 and 5.0 degrees for two builds of the same avatar (the output's fit is sensitive to the
    # avatar); the unchanged source frame scores about 11.
    assert ours["apd_deg"] < 6 < still["apd_deg"]
    assert ours["yaw_corr"] > 0.9
    # Identity about as well kept as by the unchanged photo itself (measured 0.46 against the photo's 0.43 and
    # the 2D warp's 0.42; one person below 0.6).
    assert ours["same_person"] == 1.0 and ours["id_distance"] < still["id_distance"] + 0.05
    assert ours["face_found"] == 1.0
    assert 0 < ours["ssim_face"] < 1 and ours["psnr"] > ours["psnr_face"] - 15


@pytest.fixture(scope="module")
def hanks_video(tmp_path_factory, insightface_dir):
    """Another person talking: the Tom Hanks photo re-posed with an opening jaw and a head turn."""
    from headsplat.api import render_posed_photo

    t = np.arange(10) / 25.0
    controls = {"jaw_open": (0.8 * np.clip(np.sin(2 * np.pi * t / 0.4), 0, None)).astype(np.float32),
                "head_yaw": (15 * np.sin(2 * np.pi * t / 0.4)).astype(np.float32)}
    path = tmp_path_factory.mktemp("hanks") / "hanks.mp4"
    render_posed_photo(insightface_dir / "Tom_Hanks_54745.png", path, controls=controls, fps=25.0, quiet=True,
                       size=384)
    return path


def test_cross_keeps_the_source_identity_and_follows_the_driver(tmp_path, astro_avatar, hanks_video):
    out = tmp_path / "cross"
    assert main(["-q", "eval", "cross", "--source", str(astro_avatar), "--driver", str(hanks_video),
                 "-o", str(out)]) == 0
    rep = json.loads((out / "report.json").read_text())
    ours, driver = rep["summary"]["headsplat"], rep["summary"]["driver frames"]
    assert rep["protocol"] == "cross" and len(rep["frames"]) == 10
    assert ours["same_person"] == 1.0 and ours["id_distance"] < 0.45
    assert driver["id_distance"] > 0.6  # another person
    assert ours["mouth_corr"] > 0.7 and ours["yaw_corr"] > 0.8
    assert "| driver frames |" in (out / "report.md").read_text()


def test_bad_inputs_fail_with_one_line_and_leave_nothing(tmp_path, astronaut_path, capsys):
    out = tmp_path / "report"
    assert main(["-q", "eval", "reenact", str(astronaut_path), "-o", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "needs a video" in err and str(astronaut_path) in err
    assert main(["-q", "eval", "reenact", str(tmp_path / "missing.mp4"), "-o", str(out)]) == 1
    assert "missing.mp4" in capsys.readouterr().err
    assert main(["-q", "eval", "reenact", str(astronaut_path), "-o", str(tmp_path / "r.json")]) == 1
    assert "is a folder" in capsys.readouterr().err
    assert not out.exists() and not any(p.name.startswith(".report") for p in tmp_path.iterdir())


@pytest.mark.slow
def test_reenact_from_a_frame_of_the_video(tmp_path, posed_video):
    out = tmp_path / "report"
    assert main(["-q", "eval", "reenact", str(posed_video[0]), "--source-frame", "0", "--max-frames", "8",
                 "-o", str(out)]) == 0
    rep = json.loads((out / "report.json").read_text())
    assert 0 not in rep["frames"] and len(rep["frames"]) == 8
    assert (out / "avatar.avatar" / "avatar.json").is_file()
    s = rep["summary"]
    assert s["headsplat"]["psnr_face"] > s["source frame"]["psnr_face"] + 3


def test_reenact_train_range_against_the_one_shot_avatar(tmp_path, posed_video, monkeypatch):
    """--train A:B: the avatar from frames A..B-1, scored on the frames outside, beside the one-shot row (tiny
    fits: what is built and scored is the point here)."""
    from headsplat.avatar.config import PRESETS
    from tests.avatar.test_many_views import TINY_MANY

    monkeypatch.setitem(PRESETS, "fast", TINY_MANY)
    out = tmp_path / "report"
    rc = main(["-q", "eval", "reenact", str(posed_video[0]), "--train", "0:24", "--train-frames", "3",
               "--max-frames", "3", "-o", str(out)])
    assert rc == 0
    rep = json.loads((out / "report.json").read_text())
    assert list(rep["summary"]) == ["headsplat", "one-shot (frame 0)", "source frame", "2D warp"]
    assert rep["frames"] == [24, 25, 26]  # only frames outside the training range
    assert "of frames 0..23 (--train 0:24)" in rep["settings"]["avatar from"]
    made = json.loads((out / "avatar.avatar" / "avatar.json").read_text())["info"]
    assert made["frames"][0] == 0 and len(made["frames"]) == 3 and max(made["frames"]) < 24
    assert (out / "one_shot.avatar" / "avatar.json").is_file()
    assert "| one-shot (frame 0) |" in (out / "report.md").read_text()


@pytest.mark.parametrize("args, message", [
    (["--train", "0-24"], "expected A:B"),
    (["--train", "30:20"], "--train 30:20 is not a range of frames (0 <= A < B)"),
    (["--train", "20:60"], "is not a range of the video's 48 frames"),
    (["--train", "0:10", "--source-frame", "3"], "drop --source-frame"),
])
def test_reenact_train_errors(tmp_path, posed_video, capsys, args, message):
    rc = main(["-q", "eval", "reenact", str(posed_video[0]), *args, "-o", str(tmp_path / "r")])
    assert rc == 1 and message in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
