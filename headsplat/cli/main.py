"""``headsplat`` command line: a thin layer over :mod:`headsplat.api`, its method and generator options built from
their registries. User errors print one line and exit 1."""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from typing import Callable

from headsplat import api
from headsplat.avatar.generators import GENERATORS, get_generator
from headsplat.avatar.methods import DEFAULT_METHOD, get_method, method_names
from headsplat.avatar.methods import command_options as method_options
from headsplat.avatar.options import DEVICE, Option
from headsplat.core.errors import ArgumentError, HeadsplatError
from headsplat.rig.factory import RIG_KINDS

FACE_HELP = "which face when there are several (0: largest)"


def _add_option(p: argparse.ArgumentParser, o: Option, flags: dict[str, str]) -> None:
    """``o`` as a flag of ``p``, absent from the parsed arguments unless given (the functions' defaults apply)."""
    if not o.cli:
        return
    flags[o.name] = o.cli_flag
    text = o.help.replace("%", "%%") if o.help else o.help  # argparse formats help with %: a literal % is doubled
    if o.flag_value is not None:
        p.add_argument(o.cli_flag, dest=o.name, action="store_const", const=o.flag_value, default=argparse.SUPPRESS,
                       help=text)
        return
    p.add_argument(o.cli_flag, dest=o.name, type=o.type, choices=o.choices, metavar=o.metavar,
                   nargs="+" if o.many else None, default=argparse.SUPPRESS, help=text)


def _options(p: argparse.ArgumentParser, options: dict[str, Option], flags: dict[str, str], title: str) -> None:
    if options:
        group = p.add_argument_group(title)
        for o in options.values():
            _add_option(group, o, flags)


def _method_arg(p) -> None:
    p.add_argument("--method", default=DEFAULT_METHOD, choices=method_names(),
                   help="the avatar method: " + "; ".join(f"{n}: {get_method(n).summary}" for n in method_names()))


def _parser() -> tuple[argparse.ArgumentParser, dict[str, str]]:
    """The parser, and each option's flag by its parameter name (to name flags in errors)."""
    flags: dict[str, str] = {"method": "--method", "model": "--model"}
    ap = argparse.ArgumentParser(prog="headsplat", description="Animatable 3D Gaussian head avatars.")
    ap.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("track", help="track a face: camera, head pose, expression per frame")
    p.add_argument("input", help="an image, a folder of images, or a video")
    p.add_argument("-o", "--output", required=True, help="the .track file to write")
    p.add_argument("--overlay", help="also draw the fitted rig over the frames (.mp4, or .png for an image)")
    p.add_argument("--face", type=int, default=0, help=FACE_HELP)
    p.add_argument("--fov", type=float, help="fix the horizontal field of view in degrees (default: estimated)")
    p.add_argument("--style", choices=("shaded", "wireframe"), default="shaded", help="overlay style")
    p.add_argument("--rig", default="open", choices=RIG_KINDS,
                   help="head rig: open (default, no licensed asset) or flame (your FLAME model file)")
    p.add_argument("--flame-model", help="FLAME model file (default: $HEADSPLAT_FLAME_MODEL or "
                   "~/.config/headsplat/config.json)")
    p.add_argument("--flame-embedding", help="FLAME: a MediaPipe landmark embedding .npz instead of the one "
                   "headsplat computes")
    p.add_argument("--device", default=DEVICE.default, choices=DEVICE.choices,
                   help="where the face networks run: cpu (default) or cuda")

    p = sub.add_parser("create", help="create an avatar from a photo, several photos or a video")
    p.add_argument("inputs", nargs="*", help="one photo, several photos of one person (same size), or a video "
                   "(none with --views: the view set alone)")
    p.add_argument("-o", "--output", required=True, help="the NAME.avatar folder to write")
    p.add_argument("--face", type=int, default=0, help=FACE_HELP)
    _method_arg(p)
    _options(p, method_options("create"), flags, "method options (each names the methods it applies to)")

    p = sub.add_parser("generate", help="views of a person made by a generator, as a view set for create --views")
    names = GENERATORS.names()
    p.add_argument("source", nargs="*", help="; ".join(get_generator(n).source_help for n in names))
    p.add_argument("--model", default=GENERATORS.default, choices=names,
                   help="the generator: " + "; ".join(f"{n}: {get_generator(n).summary}" for n in names))
    p.add_argument("-o", "--output", required=True, help="the view set folder to write")
    p.add_argument("--face", type=int, default=0, help=FACE_HELP)
    _options(p, GENERATORS.command_options("generate"), flags, "generator options")

    p = sub.add_parser("animate", help="drive an avatar with a video, image(s) or a .track file")
    p.add_argument("avatar", help="the .avatar folder")
    p.add_argument("--driver", required=True, help="a video, an image, a folder of images or a .track file")
    p.add_argument("-o", "--output", required=True, help=".mp4, or a folder for PNG frames")
    p.add_argument("--face", type=int, default=0, help="which face of the driver when there are several")
    _options(p, method_options("animate"), flags, "options of the avatar's method")

    p = sub.add_parser("render", help="turntable video or stills of an avatar")
    p.add_argument("avatar", help="the .avatar folder")
    p.add_argument("-o", "--output", required=True, help=".mp4 (or a folder) for --orbit, .png for a still")
    p.add_argument("--orbit", action="store_true", help="a turntable (the default unless the output is .png)")
    p.add_argument("--frames", type=int, default=90, help="turntable frames")
    p.add_argument("--size", type=int, default=512, help="output side in pixels")
    p.add_argument("--yaw", type=float, default=0.0, help="still: head yaw in degrees")
    p.add_argument("--pitch", type=float, default=0.0, help="head pitch in degrees")
    _options(p, method_options("render"), flags, "options of the avatar's method")

    p = sub.add_parser("export", help="posed Gaussians as a standard 3DGS PLY")
    p.add_argument("avatar", help="the .avatar folder")
    p.add_argument("--ply", help="one PLY file")
    p.add_argument("--ply-sequence", help="a folder with one PLY per driver frame")
    p.add_argument("--driver", help="pose from a driver (video, images or .track)")
    p.add_argument("--frame", type=int, default=0, help="which driver frame for --ply")
    _options(p, method_options("export"), flags, "options of the avatar's method")

    p = sub.add_parser("view", help="look at an avatar in the browser: orbit, controls, driver playback")
    p.add_argument("avatar", help="the .avatar folder")
    p.add_argument("--driver", help="a video, image(s) or .track to play on the avatar")
    p.add_argument("--port", type=int, default=8080, help="port of the local page (default 8080)")
    p.add_argument("--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1: this machine only)")
    p.add_argument("--no-browser", action="store_true", help="do not open a browser")
    p.add_argument("--screenshots", default=".", help="folder for the page's screenshots (default: here)")
    p.add_argument("--face", type=int, default=0, help="which face of the driver when there are several")
    _options(p, method_options("view"), flags, "options of the avatar's method")

    p = sub.add_parser("demo", help="the whole job on the built-in sample portrait")
    p.add_argument("-o", "--output-dir", default="headsplat-demo", help="folder for the results")
    p.add_argument("--preset", default="fast", choices=method_options("create")["preset"].choices,
                   help="fitting preset")

    p = sub.add_parser("eval", help="reenactment metrics on a video (self: reenact; cross: another driver)")
    protocols = p.add_subparsers(dest="protocol", required=True, metavar="PROTOCOL")
    q = protocols.add_parser("reenact", help="self-reenactment: avatar from one frame, driven by the rest of the "
                             "video, every frame compared with the real one, beside two baselines")
    q.add_argument("video", nargs="?", help="a video (or a folder of frames) of one person")
    q.add_argument("--sample", action="store_true", help="instead of a video, the built-in sample: the built-in "
                   "portrait re-posed with the demo's performance (known head parameters)")
    q.add_argument("--source-frame", type=int, action="append", dest="source_frames",
                   help="frame the avatar is made from (default 0; repeat for several)")
    q.add_argument("-o", "--output", required=True, help="the report folder to write")
    _eval_args(q, "reenact", flags)
    q = protocols.add_parser("cross", help="cross-reenactment: identity kept from the source, motion from "
                             "another person's video")
    q.add_argument("--source", required=True, nargs="+", help="the source photo(s), or a .avatar")
    q.add_argument("--driver", required=True, help="the driver video (or a folder of frames)")
    q.add_argument("-o", "--output", required=True, help="the report folder to write")
    _eval_args(q, "cross", flags)

    p = sub.add_parser("batch", help="many jobs (create, animate, track, eval, generate) from a spec file, as Ray "
                       "tasks; re-running resumes")
    p.add_argument("spec", help="a .yaml, .json or .csv file of jobs (see docs/batch.md)")
    p.add_argument("-o", "--output-dir", required=True, help="the batch folder: a folder per job, batch.json")
    p.add_argument("--address", help="a Ray cluster to join: auto, or ray://HOST:10001 (default: a local Ray "
                   "instance on this machine's cores and GPUs)")
    p.add_argument("--gpus-per-task", type=float, default=0.0, help="GPUs each job asks for (default 0)")
    p.add_argument("--cpus-per-task", type=float, default=1.0, help="CPUs each job asks for (default 1)")
    p.add_argument("--retries", type=int, default=0, help="further tries of a job whose command failed (default 0)")
    flags.update(cpus_per_task="--cpus-per-task", gpus_per_task="--gpus-per-task", retries="--retries")

    p = sub.add_parser("doctor", help="versions, face models, device and FLAME file found")
    p.add_argument("--flame-model", help="check this FLAME model file (default: $HEADSPLAT_FLAME_MODEL or the "
                                         "per-user config)")
    p.add_argument("--weights", help="say which model a weights file is and whether its layout is complete")
    p.add_argument("--cap4d-assets", help="check CAP4D's assets folder (default: $HEADSPLAT_CAP4D_ASSETS or the "
                                          "per-user config)")
    return ap, flags


def _eval_args(q, protocol: str, flags: dict[str, str]) -> None:
    q.add_argument("--max-frames", type=int, help="evaluate at most this many frames")
    q.add_argument("--face", type=int, default=0, help=FACE_HELP)
    _method_arg(q)
    _options(q, method_options(protocol), flags, "options of the method")


def _given(args: argparse.Namespace, options: dict[str, Option]) -> dict:
    """The options given on the command line (the rest keep the functions' defaults)."""
    return {name: getattr(args, name) for name in options if hasattr(args, name)}


def _warn_one_line(message, category, filename, lineno, file=None, line=None):
    print(f"headsplat: warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser, flags = _parser()
    args = parser.parse_args(argv)
    warnings.showwarning = _warn_one_line
    t0 = time.perf_counter()
    try:
        return HANDLERS[args.command](args, t0)
    except ArgumentError as e:
        print(f"headsplat: error: {flags.get(e.param, e.param)}: {e.message}", file=sys.stderr)
        return 1
    except HeadsplatError as e:
        print(f"headsplat: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("headsplat: interrupted; nothing half-written was left", file=sys.stderr)
        return 130


def _fmt(v, spec) -> str:
    return "n/a" if v is None else format(v, spec)


def _eval_line(report: dict) -> str:
    s = report["summary"]["headsplat"]
    if report["protocol"] == "self":
        base = report["summary"]
        return (f"self-reenactment on {len(report['frames'])} frames: face PSNR {_fmt(s['psnr_face'], '.2f')} dB "
                f"(source frame {_fmt(base['source frame']['psnr_face'], '.2f')}, 2D warp "
                f"{_fmt(base['2D warp']['psnr_face'], '.2f')}), SSIM {_fmt(s['ssim_face'], '.3f')}, CSIM "
                f"{_fmt(s['csim'], '.3f')}, NME {_fmt(s['nme'], '.4f')}")
    return (f"cross-reenactment on {len(report['frames'])} frames: CSIM to source {_fmt(s['csim'], '.3f')}, "
            f"mouth corr {_fmt(s['mouth_corr'], '.2f')}, yaw corr {_fmt(s.get('yaw_corr'), '.2f')}")


# -- one handler per command: call the function, print one summary line ------------------------------------------
def _track(args, t0: float) -> int:
    tr = api.track(args.input, args.output, overlay=args.overlay, face=args.face, fov=args.fov, style=args.style,
                   quiet=args.quiet, rig=args.rig, flame_model=args.flame_model, flame_embedding=args.flame_embedding,
                   device=args.device)
    err = float(tr.fit_error[tr.found].mean())
    extra = f", overlay {args.overlay}" if args.overlay else ""
    print(f"tracked {len(tr)} frame(s) in {time.perf_counter() - t0:.1f} s (fov {tr.camera().fov_x_deg:.1f} deg, "
          f"mean landmark error {err:.2f} px, {tr.n_missing} without a face) -> {args.output}{extra}")
    return 0


def _create(args, t0: float) -> int:
    av = api.create(args.inputs, args.output, face=args.face, quiet=args.quiet, method=args.method,
                    **_given(args, method_options("create")))
    print(f"created {get_method(args.method).describe(av)} in {time.perf_counter() - t0:.1f} s -> {args.output}")
    return 0


def _generate(args, t0: float) -> int:
    out = api.generate(args.source, args.output, model=args.model, face=args.face, quiet=args.quiet,
                       **_given(args, GENERATORS.command_options("generate")))
    print(f"generated views with {args.model} in {time.perf_counter() - t0:.1f} s -> {out}")
    return 0


def _animate(args, t0: float) -> int:
    res = api.animate(args.avatar, args.driver, args.output, face=args.face, quiet=args.quiet,
                      **_given(args, method_options("animate")))
    dt = time.perf_counter() - t0
    shots = f", {res['shots']} shots" if res["shots"] > 1 else ""
    print(f"animated {res['frames']} frame(s) at {res['fps']:.2f} fps{shots} in {dt:.1f} s "
          f"({res['frames'] / dt:.1f} frames/s) -> {res['output']}")
    return 0


def _render(args, t0: float) -> int:
    out = api.render(args.avatar, args.output, orbit=args.orbit or not args.output.lower().endswith(".png"),
                     frames=args.frames, size=args.size, yaw=args.yaw, pitch=args.pitch, quiet=args.quiet,
                     **_given(args, method_options("render")))
    print(f"rendered in {time.perf_counter() - t0:.1f} s -> {out}")
    return 0


def _export(args, t0: float) -> int:
    paths = api.export(args.avatar, ply=args.ply, driver=args.driver, frame=args.frame,
                       ply_sequence=args.ply_sequence, quiet=args.quiet, **_given(args, method_options("export")))
    where = paths[0] if args.ply else args.ply_sequence
    print(f"exported {len(paths)} PLY file(s) in {time.perf_counter() - t0:.1f} s -> {where}")
    return 0


def _view(args, t0: float) -> int:
    api.view(args.avatar, driver=args.driver, port=args.port, host=args.host, open_browser=not args.no_browser,
             face=args.face, quiet=args.quiet, screenshot_dir=args.screenshots, block=True,
             **_given(args, method_options("view")))
    return 0


def _demo(args, t0: float) -> int:
    paths = api.demo(args.output_dir, quiet=args.quiet, preset=args.preset)
    print(f"demo: avatar {paths['avatar']} (foreground PSNR {paths['info']['psnr_foreground']:.1f} dB), "
          f"{paths['frames']} frames animated in {time.perf_counter() - t0:.1f} s -> {paths['video']}")
    return 0


def _eval(args, t0: float) -> int:
    common = dict(max_frames=args.max_frames, face=args.face, quiet=args.quiet, method=args.method,
                  **_given(args, method_options(args.protocol)))
    if args.protocol == "reenact":
        if (args.video is None) == (not args.sample):
            raise HeadsplatError("eval reenact: give a VIDEO or --sample (not both)")
        if "train" in common and args.source_frames:
            raise HeadsplatError("eval reenact: --train chooses the avatar's frames; drop --source-frame")
        rep = api.eval_reenact(args.video, args.output, source_frames=args.source_frames or (0,), **common)
    else:
        rep = api.eval_cross(args.source, args.driver, args.output, **common)
    print(_eval_line(rep) + f" in {time.perf_counter() - t0:.0f} s -> {args.output}/report.md")
    return 0


def _batch(args, t0: float) -> int:
    res = api.batch(args.spec, args.output_dir, address=args.address, gpus_per_task=args.gpus_per_task,
                    cpus_per_task=args.cpus_per_task, retries=args.retries, quiet=args.quiet)
    m = res["manifest"]
    c = m["counts"]
    for name, rec in m["jobs"].items():
        if rec["status"] == "failed":
            print(f"headsplat: job {name} failed: {rec['error']}", file=sys.stderr)
    reports = "".join(f", {p}" for p in res["reports"] if p.suffix == ".md")
    print(f"batch: {len(m['jobs'])} job(s): {c['done']} done ({m['last_run']['skipped']} already), {c['failed']} "
          f"failed in {time.perf_counter() - t0:.1f} s -> {args.output_dir}/batch.json{reports}")
    return 1 if c["failed"] else 0


def _doctor(args, t0: float) -> int:
    rows = api.doctor(flame_model=args.flame_model, weights=args.weights, cap4d_assets=args.cap4d_assets)
    w = max(len(r[0]) for r in rows)
    for name, detail, ok in rows:
        print(f"{'ok ' if ok else 'MISSING'} {name:<{w}}  {detail}")
    return 0 if all(ok for _, _, ok in rows) else 1


HANDLERS: dict[str, Callable[[argparse.Namespace, float], int]] = {
    "track": _track, "create": _create, "generate": _generate, "animate": _animate, "render": _render,
    "export": _export, "view": _view, "demo": _demo, "eval": _eval, "batch": _batch, "doctor": _doctor}


if __name__ == "__main__":
    sys.exit(main())
