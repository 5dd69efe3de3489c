"""``headsplat`` command line: a thin layer over :mod:`headsplat.api`. User errors print one line and exit 1."""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="headsplat", description="Animatable 3D Gaussian head avatars.")
    ap.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("track", help="track a face: camera, head pose, expression per frame")
    p.add_argument("input", help="an image, a folder of images, or a video")
    p.add_argument("-o", "--output", required=True, help="the .track file to write")
    p.add_argument("--overlay", help="also draw the fitted rig over the frames (.mp4, or .png for an image)")
    p.add_argument("--face", type=int, default=0, help="which face when there are several (0: largest)")
    p.add_argument("--fov", type=float, help="fix the horizontal field of view in degrees (default: estimated)")
    p.add_argument("--style", choices=("shaded", "wireframe"), default="shaded", help="overlay style")

    p = sub.add_parser("demo", help="the whole job on the built-in sample portrait")
    p.add_argument("-o", "--output-dir", default="headsplat-demo", help="folder for the results")

    sub.add_parser("doctor", help="versions, face models and device found")
    return ap


def _warn_one_line(message, category, filename, lineno, file=None, line=None):
    print(f"headsplat: warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    from headsplat.core.errors import HeadsplatError

    args = _parser().parse_args(argv)
    warnings.showwarning = _warn_one_line
    t0 = time.perf_counter()
    try:
        return _run(args, t0)
    except HeadsplatError as e:
        print(f"headsplat: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("headsplat: interrupted; nothing half-written was left", file=sys.stderr)
        return 130


def _run(args, t0: float) -> int:
    from headsplat import api

    if args.command == "track":
        tr = api.track(args.input, args.output, overlay=args.overlay, face=args.face, fov=args.fov,
                       style=args.style, quiet=args.quiet)
        err = float(tr.fit_error[tr.found].mean())
        extra = f", overlay {args.overlay}" if args.overlay else ""
        print(f"tracked {len(tr)} frame(s) in {time.perf_counter() - t0:.1f} s (fov {tr.camera().fov_x_deg:.1f} deg, "
              f"mean landmark error {err:.2f} px, {tr.n_missing} without a face) -> {args.output}{extra}")
        return 0
    if args.command == "demo":
        paths = api.demo(args.output_dir, quiet=args.quiet)
        print(f"demo: {paths['frames']} frames in {time.perf_counter() - t0:.1f} s -> sample video {paths['video']}, "
              f"tracking {paths['track']}, overlay {paths['overlay']}")
        return 0
    if args.command == "doctor":
        rows = api.doctor()
        w = max(len(r[0]) for r in rows)
        for name, detail, ok in rows:
            print(f"{'ok ' if ok else 'MISSING'} {name:<{w}}  {detail}")
        return 0 if all(ok for _, _, ok in rows) else 1
    raise AssertionError(args.command)  # argparse restricts the choices


if __name__ == "__main__":
    sys.exit(main())
