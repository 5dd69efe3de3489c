"""``headsplat batch``: a spec checked whole before anything is written, jobs run as Ray tasks (a local instance
with 2 CPUs, started once for the module), failures recorded without stopping the others, atomic outputs,
resumption, one tracking of a shared driver, Ctrl-C, and the eval jobs' aggregated report.

Most jobs call stand-in functions (below) with the public functions' parameters, which log their calls, so the
batch machinery is tested in seconds; one test runs real ``track`` jobs through :func:`headsplat.api.batch`."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from headsplat import api
from headsplat.avatar.batch import Resources, SpecError, plan, run
from headsplat.avatar.batch.shared import driver_track_args
from headsplat.cli.main import main
from headsplat.core.errors import MissingDependencyError, NoFaceError
from headsplat.eval.report import aggregate, aggregate_markdown


# -- stand-ins with the public functions' parameters -------------------------------------------------------------
def _log(log, line: str) -> None:
    if log:
        with open(log, "a") as f:
            f.write(line + "\n")


def fake_create(inputs, output, rig="open", preset="fast", quiet=False, method="headsplat", log=None, sleep=0.0,
                flaky=None):
    _log(log, f"create {Path(inputs if isinstance(inputs, str) else inputs[0]).name}")
    if flaky is not None and not Path(flaky).exists():  # fails on its first call only
        Path(flaky).write_text("x")
        raise RuntimeError("flaky\nsecond line")
    if "noface" in str(inputs):
        raise NoFaceError(f"{inputs}: no face found")
    time.sleep(sleep)
    Path(output).mkdir()
    (Path(output) / "avatar.json").write_text(json.dumps({"rig": rig, "inputs": str(inputs)}))
    return {"frames": 1, "path": Path(output)}


def fake_track(input, output, face=0, quiet=False, rig="open", flame_model=None):
    _log(Path(output).parent / "track-calls.log", f"track {Path(input).name}")
    Path(output).write_text(f"tracked {input}")


def fake_animate(avatar, driver, output, quiet=False, paste_back=False, face=0, log=None, kill=False, sleep=0.0):
    _log(log, f"animate {Path(avatar).name} {Path(driver).name}")
    Path(output).write_text("half")
    if kill:
        os._exit(1)  # the worker dies halfway through its job
    time.sleep(sleep)
    Path(output).write_text(f"{avatar}|{driver}")
    return {"frames": 3}


def fake_reenact(video, output_dir, quiet=False, max_frames=None):
    psnr = float(Path(video).read_text())
    if psnr < 0:
        raise NoFaceError(f"{video}: no face found in any frame")
    Path(output_dir).mkdir()
    report = {"protocol": "self", "frames": list(range(4)), "settings": {"video": str(video)},
              "summary": {"headsplat": {"psnr_face": psnr, "csim": None}, "source frame": {"psnr_face": 10.0}}}
    (Path(output_dir) / "report.json").write_text(json.dumps(report))
    return report


FAKE = {"create": fake_create, "track": fake_track, "animate": fake_animate, "eval reenact": fake_reenact}


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'headsplat[batch]')")
    import sys

    # The stand-ins travel to the workers by value: pytest imports this module under a name they cannot import.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield ray
    ray.shutdown()


def _spec(folder: Path, jobs, defaults=None, name="spec.json") -> Path:
    p = folder / name
    p.write_text(json.dumps({"jobs": jobs, **({"defaults": defaults} if defaults else {})}))
    return p


def _files(folder: Path, names) -> None:
    for n in names:
        (folder / n).write_text(n)


def _run(spec, out, **kw):
    jobs = plan(spec, FAKE, out, share_tracks=driver_track_args)
    return run(jobs, out, FAKE, resources=Resources(**kw), quiet=True)


def _calls(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


# -- the spec ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("jobs,message", [
    ([{"command": "create", "inputs": "a.jpg"}], "job 1: 'name' must be given"),
    ([{"name": "a", "command": "paint", "inputs": "a.jpg"}], "job a: command: expected one of create"),
    ([{"name": "a", "command": "create"}], "job a: inputs: create needs it"),
    ([{"name": "a", "command": "create", "inputs": "missing.jpg"}], "job a: inputs: "),
    ([{"name": "a", "command": "create", "inputs": "a.jpg", "colour": 1}], "job a: colour: not a field of create"),
    ([{"name": "a", "command": "create", "inputs": "a.jpg", "preset": "slow"}],
     "job a: preset: unknown value 'slow'; choose fast or quality"),
    ([{"name": "a", "command": "animate", "avatar": "@b", "driver": "a.jpg"}], "job a: avatar: @b: no job of that"),
    ([{"name": "a", "command": "create", "inputs": "a.jpg"},
      {"name": "b", "command": "animate", "avatar": "a.jpg", "driver": "@a"}], "job b: driver: @a: that job writes a"),
    ([{"name": "a", "command": "create", "inputs": "a.jpg"}, {"name": "a", "command": "create", "inputs": "a.jpg"}],
     "job a: name: two jobs have this name"),
    ([{"name": "g", "command": "create", "foreach": {"inputs": "nothing*.png"}}], "job g: foreach.inputs: "),
])
def test_spec_errors_name_file_job_and_field_and_write_nothing(tmp_path, capsys, jobs, message):
    _files(tmp_path, ["a.jpg"])
    spec = _spec(tmp_path, jobs)
    with pytest.raises(SpecError) as e:
        plan(spec, FAKE, tmp_path / "out")
    assert str(e.value).startswith(f"{spec}: ") and message in str(e.value), str(e.value)
    assert "\n" not in str(e.value)
    # the command: one line, exit 1, no output folder
    assert main(["-q", "batch", str(spec), "-o", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message.split(": ")[-1] in err[0], err
    assert not (tmp_path / "out").exists()


def test_a_create_job_may_fit_a_view_set_alone(tmp_path):
    (tmp_path / "views").mkdir()
    from headsplat.api.batches import FUNCTIONS

    jobs = plan(_spec(tmp_path, [{"name": "v", "command": "create", "views": "views"}]), FUNCTIONS,
                tmp_path / "out")
    (job,) = jobs.ordered()
    assert Path(job.args["views"]) == tmp_path / "views" and not job.args.get("inputs")


def test_spec_expansion_csv_yaml_and_cross_product(tmp_path):
    _files(tmp_path, ["p1.jpg", "p2.jpg", "d1.mp4", "d2.mp4"])
    (tmp_path / "spec.yaml").write_text(
        "defaults:\n  create: {preset: quality}\njobs:\n"
        "  - {name: people, command: create, foreach: {inputs: 'p*.jpg'}}\n"
        "  - {name: talk, command: animate, foreach: {avatar: '@people', driver: [d1.mp4, d2.mp4]}}\n")
    p = plan(tmp_path / "spec.yaml", FAKE, tmp_path / "out")
    assert [j for j in p.jobs if not j.startswith("_")] == [
        "people.p1", "people.p2", "talk.p1.d1", "talk.p1.d2", "talk.p2.d1", "talk.p2.d2"]
    assert p.jobs["people.p1"].args == {"preset": "quality", "inputs": str(tmp_path / "p1.jpg")}
    assert p.jobs["talk.p2.d1"].args["avatar"] == str(tmp_path / "out" / "people.p2" / "people.p2.avatar")
    assert p.jobs["talk.p2.d1"].deps == ("people.p2",)
    (tmp_path / "spec.csv").write_text("name,command,inputs,preset\nx,create,p1.jpg;p2.jpg,fast\n")
    job = plan(tmp_path / "spec.csv", FAKE, tmp_path / "out").jobs["x"]
    assert job.args == {"inputs": [str(tmp_path / "p1.jpg"), str(tmp_path / "p2.jpg")], "preset": "fast"}
    # the key follows the inputs' contents
    key = job.key
    (tmp_path / "p2.jpg").write_text("changed")
    assert plan(tmp_path / "spec.csv", FAKE, tmp_path / "out").jobs["x"].key != key


def test_without_ray_one_line_says_how_to_install(tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)
    spec = _spec(tmp_path, [])
    with pytest.raises(MissingDependencyError, match=r"pip install 'headsplat\[batch\]'"):
        api.batch(spec, tmp_path / "out")
    assert main(["-q", "batch", str(spec), "-o", str(tmp_path / "out")]) == 1
    assert capsys.readouterr().err.strip() == "headsplat: error: headsplat batch needs Ray: pip install " \
                                              "'headsplat[batch]'"


# -- running -----------------------------------------------------------------------------------------------------
def test_failures_are_recorded_others_finish_and_resume_skips_done_retries_failed(tmp_path, local_ray):
    _files(tmp_path, ["ann.jpg", "bob.jpg", "noface.jpg"])
    log = tmp_path / "calls.log"
    spec = _spec(tmp_path, [
        {"name": "people", "command": "create", "foreach": {"inputs": ["ann.jpg", "noface.jpg", "bob.jpg"]}},
        {"name": "talk", "command": "animate", "foreach": {"avatar": "@people"}, "driver": "ann.jpg"}],
        defaults={"create": {"log": str(log)}, "animate": {"log": str(log)}})
    out = tmp_path / "out"
    m = _run(spec, out)
    jobs = m["jobs"]
    assert {n: r["status"] for n, r in jobs.items()} == {
        "people.ann": "done", "people.noface": "failed", "people.bob": "done",
        "talk.ann": "done", "talk.noface": "failed", "talk.bob": "done"}
    assert jobs["people.noface"]["error"] == f"{tmp_path / 'noface.jpg'}: no face found"
    assert jobs["talk.noface"]["error"] == "needs people.noface, which failed"
    assert m["counts"] == {"done": 4, "failed": 2, "pending": 0, "cancelled": 0}
    assert jobs["people.ann"]["seconds"] >= 0 and jobs["people.ann"]["peak_rss_mb"] > 10
    assert json.loads((out / "batch.json").read_text()) == m
    # outputs: complete job folders only
    assert (out / "people.ann" / "people.ann.avatar" / "avatar.json").is_file()
    meta = json.loads((out / "people.ann" / "job.json").read_text())
    assert meta["key"] == jobs["people.ann"]["key"] and meta["result"]["frames"] == 1
    assert not (out / "people.noface").exists() and not (out / "talk.noface").exists()
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["_cache", "batch.json", ".batch.lock", "people.ann", "people.bob", "talk.ann", "talk.bob"])
    # the shared driver ann.jpg was tracked once for the two avatars that finished (three asked for it)
    assert _calls(out / "_cache" / "tracks" / "track-calls.log") == ["track ann.jpg"]
    track = next((out / "_cache" / "tracks").glob("*.track"))
    assert (out / "talk.bob" / "talk.bob.mp4").read_text().endswith(f"|{track}")

    # resume: nothing done runs again, the failed ones run again
    n = len(_calls(log))
    m2 = _run(spec, out)
    assert sorted(_calls(log)[n:]) == ["create noface.jpg"]
    assert m2["last_run"]["skipped"] == 5 and m2["jobs"]["people.ann"]["runs"] == 1
    assert m2["jobs"]["people.noface"]["runs"] == 2 and m2["jobs"]["people.noface"]["status"] == "failed"
    # an input changed: its job and the job reading its output run again
    (tmp_path / "bob.jpg").write_text("new photo")
    n = len(_calls(log))
    _run(spec, out)
    assert sorted(_calls(log)[n:]) == [f"animate people.bob.avatar {track.name}", "create bob.jpg",
                                       "create noface.jpg"]


def test_a_worker_killed_halfway_leaves_no_output(tmp_path, local_ray):
    _files(tmp_path, ["a.jpg"])
    (tmp_path / "a.avatar").mkdir()
    (tmp_path / "a.avatar" / "avatar.json").write_text("{}")
    spec = _spec(tmp_path, [{"name": "dies", "command": "animate", "avatar": "a.avatar", "driver": "a.jpg",
                             "kill": True},
                            {"name": "lives", "command": "animate", "avatar": "a.avatar", "driver": "a.jpg"}])
    out = tmp_path / "out"
    m = _run(spec, out, system_retries=0)
    assert m["jobs"]["lives"]["status"] == "done"
    rec = m["jobs"]["dies"]
    assert rec["status"] == "failed" and rec["error"] and "\n" not in rec["error"]
    assert not (out / "dies").exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".dies")]


def test_application_retries(tmp_path, local_ray):
    _files(tmp_path, ["a.jpg"])
    spec = _spec(tmp_path, [{"name": "f", "command": "create", "inputs": "a.jpg", "flaky": str(tmp_path / "once")}])
    m = _run(spec, tmp_path / "out1")
    assert m["jobs"]["f"]["status"] == "failed" and m["jobs"]["f"]["error"] == "RuntimeError: flaky second line"
    (tmp_path / "once").unlink()
    m = _run(spec, tmp_path / "out2", retries=1)
    assert m["jobs"]["f"]["status"] == "done" and m["jobs"]["f"]["attempts"] == 2


def test_eval_jobs_reports_aggregated(tmp_path, local_ray):
    videos = tmp_path / "videos"
    videos.mkdir()
    for name, psnr in (("v1.mp4", "20"), ("v2.mp4", "26"), ("v3.mp4", "-1")):
        (videos / name).write_text(psnr)
    spec = _spec(tmp_path, [{"name": "vfhq", "command": "eval reenact", "foreach": {"video": "videos"}}])
    out = tmp_path / "out"
    jobs = plan(spec, FAKE, out)
    m = run(jobs, out, FAKE, quiet=True)
    written = api.batches.write_eval_reports(out, m, "spec.json")
    assert [p.name for p in written] == ["report.json", "report.md"]
    agg = json.loads((out / "report.json").read_text())
    assert agg["videos"] == 2 and agg["frames"] == 8 and agg["protocol"] == "self"
    assert agg["mean"]["headsplat"]["psnr_face"] == {"mean": 23.0, "n": 2}
    assert agg["mean"]["source frame"]["psnr_face"] == {"mean": 10.0, "n": 2}
    assert "csim" not in agg["mean"]["headsplat"]
    assert agg["failed"] == {"vfhq.v3": f"{videos / 'v3.mp4'}: no face found in any frame"}
    md = (out / "report.md").read_text()
    assert "| headsplat | **23.00** |" in md and "| vfhq.v2 | 4 | headsplat | 26.00 |" in md
    assert "- vfhq.v3: " in md


def test_aggregate_counts_videos_where_a_figure_is_missing():
    reports = {f"j{i}": {"protocol": "cross", "frames": [0] * (i + 1), "settings": {"driver": f"d{i}.mp4"},
                         "summary": {"headsplat": {"csim": c, "mouth_corr": mc}}}
               for i, (c, mc) in enumerate([(0.5, None), (0.7, 0.9)])}
    agg = aggregate(reports)
    assert agg["mean"]["headsplat"]["csim"] == {"mean": pytest.approx(0.6), "n": 2}
    assert agg["mean"]["headsplat"]["mouth_corr"] == {"mean": 0.9, "n": 1}
    assert "0.900 (n=1)" in aggregate_markdown(agg, "t") and agg["frames"] == 3


def test_real_track_jobs_equal_the_command_run_alone(tmp_path, local_ray, astronaut_path, capsys):
    """Real jobs through headsplat.api.batch (the CLI): a tracked photo equal to ``api.track`` run directly, and
    a corrupt image failing on its own line."""
    from headsplat.track import Tracking

    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nnope")
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"jobs:\n  - {{name: astro, command: track, input: {astronaut_path}}}\n"
                    "  - {name: bad, command: track, input: bad.png}\n")
    out = tmp_path / "out"
    code = main(["-q", "batch", str(spec), "-o", str(out)])
    cap = capsys.readouterr()
    assert code == 1
    assert cap.err.strip().startswith("headsplat: job bad failed: ") and "bad.png: not a readable image" in cap.err
    assert "2 job(s): 1 done (0 already), 1 failed" in cap.out
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the job ran (--cpus-per-task 1): the fit's sums depend on the thread count
    try:
        direct = api.track(astronaut_path, tmp_path / "direct.track", quiet=True)
    finally:
        torch.set_num_threads(threads)
    batched = Tracking.load(out / "astro" / "astro.track")
    np.testing.assert_array_equal(batched.landmarks, direct.landmarks)
    np.testing.assert_array_equal(batched.expression, direct.expression)
    # resumed: nothing to redo for the finished job
    assert main(["-q", "batch", str(spec), "-o", str(out)]) == 1
    assert "1 done (1 already)" in capsys.readouterr().out


def test_ctrl_c_cancels_running_jobs_and_leaves_a_consistent_manifest(tmp_path, local_ray):
    _files(tmp_path, ["a.jpg", "b.jpg"])
    spec = _spec(tmp_path, [{"name": "quick", "command": "create", "inputs": "a.jpg"},
                            {"name": "slow", "command": "create", "inputs": "b.jpg", "sleep": 60}])
    out = tmp_path / "out"

    def interrupt(*_):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 4.0)
        t0 = time.perf_counter()
        with pytest.raises(KeyboardInterrupt):
            _run(spec, out)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert time.perf_counter() - t0 < 30
    m = json.loads((out / "batch.json").read_text())
    assert m["jobs"]["quick"]["status"] == "done" and m["jobs"]["slow"]["status"] == "cancelled"
    assert (out / "quick" / "job.json").is_file()
    assert not (out / "slow").exists() and not [p for p in out.iterdir() if p.name.startswith(".slow.")]


@pytest.mark.slow
def test_real_create_animate_eval_batch_equals_the_commands(tmp_path, local_ray, astronaut_path, posed_video):
    """A one-photo create, two animations of its avatar by one driver (tracked once, shared) and an eval, as a
    batch; the animation equals ``api.animate`` run directly on the batch's avatar with the video as driver."""
    import torch

    from headsplat.media import VideoReader

    video = posed_video[0]
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"jobs:\n  - {{name: astro, command: create, inputs: {astronaut_path}}}\n"
                    f"  - {{name: talk, command: animate, foreach: {{avatar: ['@astro', '@astro']}}, "
                    f"driver: {video}}}\n"
                    f"  - {{name: ev, command: eval reenact, video: {video}, max_frames: 4}}\n")
    out = tmp_path / "out"
    res = api.batch(spec, out, quiet=True)
    m = res["manifest"]
    assert m["counts"]["done"] == 4, m
    assert len(m["shared"]) == 1 and [p.name for p in res["reports"]] == ["report.json", "report.md"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        api.animate(out / "astro" / "astro.avatar", video, tmp_path / "direct.mp4", quiet=True)
    finally:
        torch.set_num_threads(threads)
    fa = [f for _, f in VideoReader(tmp_path / "direct.mp4")]
    fb = [f for _, f in VideoReader(out / "talk.astro" / "talk.astro.mp4")]
    assert len(fa) == len(fb) == 48
    assert max(np.abs(x.astype(int) - y.astype(int)).max() for x, y in zip(fa, fb)) == 0
