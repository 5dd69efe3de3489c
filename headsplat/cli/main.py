"""``headsplat`` command line: a thin layer over :mod:`headsplat.api`. User errors print one line and exit 1."""

from __future__ import annotations

import argparse
import sys
import time
import warnings


def _flame_args(p, rig_choice: bool) -> None:
    if rig_choice:
        p.add_argument("--rig", default="open", choices=("open", "flame"),
                       help="head rig: open (default, no licensed asset) or flame (your FLAME model file)")
        p.add_argument("--flame-embedding", help="FLAME: a MediaPipe landmark embedding .npz (lmk_face_idx, "
                       "lmk_b_coords, landmark_indices) instead of the one headsplat computes")
    p.add_argument("--flame-model", help="FLAME model file (default: $HEADSPLAT_FLAME_MODEL or "
                   "~/.config/headsplat/config.json)" + ("" if rig_choice else "; for FLAME avatars"))


def _model_args(p, refiner: bool = True) -> None:
    p.add_argument("--weights", help="a learned model's released weights: GAGAvatar.pt (default: "
                   "$HEADSPLAT_GAGAVATAR_WEIGHTS or \"gagavatar_weights\" in ~/.config/headsplat/config.json) or "
                   "CAP4D's cap4d_mmdm_100k.ckpt ($HEADSPLAT_CAP4D_WEIGHTS, \"cap4d_weights\")")
    if refiner:
        p.add_argument("--no-refiner", action="store_true",
                       help="GAGAvatar avatars: the raw render's first three channels (needs no weights)")


def _eval_args(p) -> None:
    p.add_argument("--max-frames", type=int, help="evaluate at most this many frames")
    p.add_argument("--preset", default="fast", choices=("fast", "quality"), help="avatar fitting preset")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where fitting runs")
    p.add_argument("--seed", type=int, default=0, help="random seed of the avatar fit")
    p.add_argument("--face", type=int, default=0, help="which face when there are several (0: largest)")
    p.add_argument("--method", default="headsplat", choices=("headsplat", "gagavatar"),
                   help="the avatar evaluated: headsplat's (default) or GAGAvatar's (--weights)")
    _model_args(p, refiner=False)
    _flame_args(p, True)


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
    _flame_args(p, True)

    p = sub.add_parser("create", help="create an avatar from a photo, several photos or a video")
    p.add_argument("inputs", nargs="+", help="one photo, several photos of one person (same size), or a video")
    p.add_argument("-o", "--output", required=True, help="the NAME.avatar folder to write")
    p.add_argument("--preset", default="fast", choices=("fast", "quality"), help="fitting preset")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where fitting runs")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same avatar)")
    p.add_argument("--face", type=int, default=0, help="which face when there are several (0: largest)")
    p.add_argument("--max-frames", type=int, help="most frames of a video or photo set used, chosen to cover its "
                   "head poses and expressions (default 60)")
    p.add_argument("--views", help="a view set folder (from `headsplat generate`) to fit as well")
    p.add_argument("--views-share", type=float, default=0.5,
                   help="share of the fitting steps spent on the generated views (default 0.5; the real frames "
                        "share the rest, so each counts more than a view)")
    p.add_argument("--method", default="headsplat", choices=("headsplat", "gagavatar"),
                   help="headsplat (default: Gaussians fitted to the input, real-time) or gagavatar (the released "
                        "GAGAvatar network from --weights, one photo, FLAME)")
    _model_args(p, refiner=False)
    _flame_args(p, True)

    p = sub.add_parser("generate", help="views of a person made by a generator, as a view set for create --views")
    p.add_argument("source", nargs="+", help="oracle: the known .avatar to render; gagavatar: a photo (or a GAGAvatar "
                   ".avatar); cap4d: one or more photos of one person (several: the same size)")
    p.add_argument("--model", default="oracle", choices=("oracle", "gagavatar", "cap4d"), help="the generator")
    p.add_argument("-o", "--output", required=True, help="the view set folder to write")
    p.add_argument("--size", type=int, help="side of the views in pixels (default: the avatar's framing)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where a learned generator runs")
    p.add_argument("--face", type=int, default=0, help="which face when there are several (0: largest)")
    _model_args(p, refiner=False)
    p.add_argument("--flame-model", help="FLAME model file, for FLAME avatars and the learned generators (cap4d: "
                   "FLAME 2023's flame2023_no_jaw.pkl)")
    p.add_argument("--cap4d-assets", help="cap4d: the CAP4D repository's data/assets folder (default: "
                   "$HEADSPLAT_CAP4D_ASSETS or the config's cap4d_assets)")
    p.add_argument("--preset", choices=("debug", "low", "medium", "high"),
                   help="cap4d: views and DDIM steps: debug 28/10 (default), low 210/50, medium 420/50, high 840/100")
    p.add_argument("--dtype", choices=("fp32", "bf16", "fp16"),
                   help="cap4d: the networks' precision (default fp32; bf16 on a GPU)")
    p.add_argument("--views", type=int, help="cap4d: generate this many views instead of the preset's")
    p.add_argument("--steps", type=int, help="cap4d: DDIM steps instead of the preset's (must divide 1000)")
    p.add_argument("--seed", type=int, help="cap4d: seed of the cameras, noise and groups (default 124, CAP4D's)")

    p = sub.add_parser("animate", help="drive an avatar with a video, image(s) or a .track file")
    p.add_argument("avatar", help="the .avatar folder")
    p.add_argument("--driver", required=True, help="a video, an image, a folder of images or a .track file")
    p.add_argument("-o", "--output", required=True, help=".mp4, or a folder for PNG frames")
    p.add_argument("--pose", default="relative", choices=("relative", "absolute", "none"),
                   help="head pose from the driver: its motion since the first frame of each shot (relative), "
                        "its own pose (absolute) or none")
    p.add_argument("--expression-scale", type=float, default=1.0, help="scale the driver's expression change")
    p.add_argument("--background", default="source", choices=("source", "white", "black", "transparent"),
                   help="behind the avatar (transparent: PNG folder output only)")
    p.add_argument("--paste-back", action="store_true",
                   help="render in each driver frame's own camera and composite the head over the driver frame")
    p.add_argument("--framing", default="avatar", choices=("avatar", "driver"),
                   help="the avatar photo's framing (default) or the driver's frame size and head placement")
    p.add_argument("--face", type=int, default=0, help="which face of the driver when there are several")
    p.add_argument("--max-frames", type=int, help="GAGAvatar avatars: animate only the first N driver frames")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="GAGAvatar avatars: where it runs")
    _model_args(p)
    _flame_args(p, False)

    p = sub.add_parser("render", help="turntable video or stills of an avatar")
    p.add_argument("avatar", help="the .avatar folder")
    p.add_argument("-o", "--output", required=True, help=".mp4 (or a folder) for --orbit, .png for a still")
    p.add_argument("--orbit", action="store_true", help="a turntable (the default unless the output is .png)")
    p.add_argument("--frames", type=int, default=90, help="turntable frames")
    p.add_argument("--size", type=int, default=512, help="output side in pixels")
    p.add_argument("--yaw", type=float, default=0.0, help="still: head yaw in degrees")
    p.add_argument("--pitch", type=float, default=0.0, help="still: head pitch in degrees")
    p.add_argument("--background", default="white", choices=("source", "white", "black", "transparent"))
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="GAGAvatar avatars: where it runs")
    _model_args(p)
    _flame_args(p, False)

    p = sub.add_parser("export", help="posed Gaussians as a standard 3DGS PLY")
    p.add_argument("avatar", help="the .avatar folder")
    p.add_argument("--ply", help="one PLY file")
    p.add_argument("--ply-sequence", help="a folder with one PLY per driver frame")
    p.add_argument("--driver", help="pose from a driver (video, images or .track)")
    p.add_argument("--frame", type=int, default=0, help="which driver frame for --ply")
    _flame_args(p, False)

    p = sub.add_parser("view", help="look at an avatar in the browser: orbit, controls, driver playback")
    p.add_argument("avatar", help="the .avatar folder")
    p.add_argument("--driver", help="a video, image(s) or .track to play on the avatar")
    p.add_argument("--port", type=int, default=8080, help="port of the local page (default 8080)")
    p.add_argument("--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1: this machine only)")
    p.add_argument("--no-browser", action="store_true", help="do not open a browser")
    p.add_argument("--screenshots", default=".", help="folder for the page's screenshots (default: here)")
    p.add_argument("--face", type=int, default=0, help="which face of the driver when there are several")
    _flame_args(p, False)

    p = sub.add_parser("demo", help="the whole job on the built-in sample portrait")
    p.add_argument("-o", "--output-dir", default="headsplat-demo", help="folder for the results")
    p.add_argument("--preset", default="fast", choices=("fast", "quality"), help="fitting preset")

    p = sub.add_parser("eval", help="reenactment metrics on a video (self: reenact; cross: another driver)")
    protocols = p.add_subparsers(dest="protocol", required=True, metavar="PROTOCOL")
    q = protocols.add_parser("reenact", help="self-reenactment: avatar from one frame, driven by the rest of the "
                             "video, every frame compared with the real one, beside two baselines")
    q.add_argument("video", nargs="?", help="a video (or a folder of frames) of one person")
    q.add_argument("--sample", action="store_true", help="instead of a video, the built-in sample: the built-in "
                   "portrait re-posed with the demo's performance (known head parameters)")
    q.add_argument("--source-frame", type=int, action="append", dest="source_frames",
                   help="frame the avatar is made from (default 0; repeat for several)")
    q.add_argument("--avatar-from", nargs="+", help="build the avatar from these photos (or use this .avatar) "
                   "instead of the video's frames")
    q.add_argument("--train", metavar="A:B", help="build the avatar from frames A..B-1 and evaluate it on the "
                   "others, beside the one-shot avatar from frame A (the protocol of per-subject video avatars)")
    q.add_argument("--train-frames", type=int, help="with --train: the most frames used (default: the preset's)")
    q.add_argument("-o", "--output", required=True, help="the report folder to write")
    _eval_args(q)
    q = protocols.add_parser("cross", help="cross-reenactment: identity kept from the source, motion from "
                             "another person's video")
    q.add_argument("--source", required=True, nargs="+", help="the source photo(s), or a .avatar")
    q.add_argument("--driver", required=True, help="the driver video (or a folder of frames)")
    q.add_argument("-o", "--output", required=True, help="the report folder to write")
    _eval_args(q)

    p = sub.add_parser("doctor", help="versions, face models, device and FLAME file found")
    p.add_argument("--flame-model", help="check this FLAME model file (default: $HEADSPLAT_FLAME_MODEL or the "
                                         "per-user config)")
    p.add_argument("--weights", help="say which model a weights file is and whether its layout is complete")
    p.add_argument("--cap4d-assets", help="check CAP4D's assets folder (default: $HEADSPLAT_CAP4D_ASSETS or the "
                                          "per-user config)")
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


def _eval_line(report: dict) -> str:
    def f(v, spec):
        return "n/a" if v is None else format(v, spec)

    s = report["summary"]["headsplat"]
    if report["protocol"] == "self":
        base = report["summary"]
        return (f"self-reenactment on {len(report['frames'])} frames: face PSNR {f(s['psnr_face'], '.2f')} dB "
                f"(source frame {f(base['source frame']['psnr_face'], '.2f')}, 2D warp "
                f"{f(base['2D warp']['psnr_face'], '.2f')}), SSIM {f(s['ssim_face'], '.3f')}, CSIM "
                f"{f(s['csim'], '.3f')}, NME {f(s['nme'], '.4f')}")
    return (f"cross-reenactment on {len(report['frames'])} frames: CSIM to source {f(s['csim'], '.3f')}, "
            f"mouth corr {f(s['mouth_corr'], '.2f')}, yaw corr {f(s.get('yaw_corr'), '.2f')}")


def _run(args, t0: float) -> int:
    from headsplat import api
    from headsplat.core.errors import HeadsplatError

    if args.command == "track":
        tr = api.track(args.input, args.output, overlay=args.overlay, face=args.face, fov=args.fov,
                       style=args.style, quiet=args.quiet, rig=args.rig, flame_model=args.flame_model,
                       flame_embedding=args.flame_embedding)
        err = float(tr.fit_error[tr.found].mean())
        extra = f", overlay {args.overlay}" if args.overlay else ""
        print(f"tracked {len(tr)} frame(s) in {time.perf_counter() - t0:.1f} s (fov {tr.camera().fov_x_deg:.1f} deg, "
              f"mean landmark error {err:.2f} px, {tr.n_missing} without a face) -> {args.output}{extra}")
        return 0
    if args.command == "create":
        av = api.create(args.inputs, args.output, rig=args.rig, preset=args.preset, device=args.device,
                        seed=args.seed, face=args.face, quiet=args.quiet, flame_model=args.flame_model,
                        flame_embedding=args.flame_embedding, max_frames=args.max_frames, views=args.views,
                        views_share=args.views_share, method=args.method, weights=args.weights)
        if args.method == "gagavatar":
            print(f"created a GAGAvatar avatar of {av.gaussians.xyz.shape[1]} Gaussians in "
                  f"{time.perf_counter() - t0:.1f} s (camera fit {av.info['camera_fit_px']:.2f} px) -> {args.output}")
            return 0
        views = f" + {av.info['views']['generated']} generated view(s)" if "views" in av.info else ""
        print(f"created an avatar of {len(av.gaussians)} Gaussians from {len(av.info['frames'])} frame(s){views} in "
              f"{time.perf_counter() - t0:.1f} s (foreground PSNR {av.info['psnr_foreground']:.1f} dB) -> {args.output}")
        return 0
    if args.command == "generate":
        out = api.generate(args.source, args.output, model=args.model, size=args.size, quiet=args.quiet,
                           flame_model=args.flame_model, weights=args.weights, device=args.device, face=args.face,
                           assets=args.cap4d_assets, preset=args.preset, dtype=args.dtype, n_views=args.views,
                           steps=args.steps, seed=args.seed)
        print(f"generated views with {args.model} in {time.perf_counter() - t0:.1f} s -> {out}")
        return 0
    if args.command == "animate":
        res = api.animate(args.avatar, args.driver, args.output, pose=args.pose,
                          expression_scale=args.expression_scale, background=args.background,
                          paste_back=args.paste_back, face=args.face, quiet=args.quiet, framing=args.framing,
                          flame_model=args.flame_model, weights=args.weights, device=args.device,
                          refiner=not args.no_refiner, max_frames=args.max_frames)
        dt = time.perf_counter() - t0
        shots = f", {res['shots']} shots" if res["shots"] > 1 else ""
        print(f"animated {res['frames']} frame(s) at {res['fps']:.2f} fps{shots} in {dt:.1f} s "
              f"({res['frames'] / dt:.1f} frames/s) -> {res['output']}")
        return 0
    if args.command == "render":
        out = api.render(args.avatar, args.output, orbit=args.orbit or not args.output.lower().endswith(".png"),
                         frames=args.frames, size=args.size, yaw=args.yaw, pitch=args.pitch,
                         background=args.background, quiet=args.quiet, flame_model=args.flame_model,
                         weights=args.weights, device=args.device, refiner=not args.no_refiner)
        print(f"rendered in {time.perf_counter() - t0:.1f} s -> {out}")
        return 0
    if args.command == "export":
        paths = api.export(args.avatar, ply=args.ply, driver=args.driver, frame=args.frame,
                           ply_sequence=args.ply_sequence, quiet=args.quiet, flame_model=args.flame_model)
        where = paths[0] if args.ply else args.ply_sequence
        print(f"exported {len(paths)} PLY file(s) in {time.perf_counter() - t0:.1f} s -> {where}")
        return 0
    if args.command == "view":
        api.view(args.avatar, driver=args.driver, port=args.port, host=args.host, open_browser=not args.no_browser,
                 face=args.face, quiet=args.quiet, flame_model=args.flame_model, screenshot_dir=args.screenshots,
                 block=True)
        return 0
    if args.command == "demo":
        paths = api.demo(args.output_dir, quiet=args.quiet, preset=args.preset)
        print(f"demo: avatar {paths['avatar']} (foreground PSNR {paths['info']['psnr_foreground']:.1f} dB), "
              f"{paths['frames']} frames animated in {time.perf_counter() - t0:.1f} s -> {paths['video']}")
        return 0
    if args.command == "eval":
        common = dict(rig=args.rig, preset=args.preset, max_frames=args.max_frames, seed=args.seed, face=args.face,
                      device=args.device, quiet=args.quiet, flame_model=args.flame_model,
                      flame_embedding=args.flame_embedding, method=args.method, weights=args.weights)
        if args.protocol == "reenact":
            if (args.video is None) == (not args.sample):
                raise HeadsplatError("eval reenact: give a VIDEO or --sample (not both)")
            train = None
            if args.train is not None:
                try:
                    a, b = (int(x) for x in args.train.split(":"))
                except ValueError:
                    raise HeadsplatError(f"--train {args.train}: expected A:B, two frame numbers") from None
                if args.source_frames:
                    raise HeadsplatError("eval reenact: --train chooses the avatar's frames; drop --source-frame")
                train = (a, b)
            rep = api.eval_reenact(args.video, args.output, source_frames=args.source_frames or (0,),
                                   avatar_from=args.avatar_from, train=train, train_frames=args.train_frames,
                                   **common)
        else:
            rep = api.eval_cross(args.source, args.driver, args.output, **common)
        print(_eval_line(rep) + f" in {time.perf_counter() - t0:.0f} s -> {args.output}/report.md")
        return 0
    if args.command == "doctor":
        rows = api.doctor(flame_model=args.flame_model, weights=args.weights, cap4d_assets=args.cap4d_assets)
        w = max(len(r[0]) for r in rows)
        for name, detail, ok in rows:
            print(f"{'ok ' if ok else 'MISSING'} {name:<{w}}  {detail}")
        return 0 if all(ok for _, _, ok in rows) else 1
    raise AssertionError(args.command)  # argparse restricts the choices


if __name__ == "__main__":
    sys.exit(main())
