"""Evaluation reports: report.json (every figure, settings, versions, timing), report.md (a table like the
papers'), plot.png (per-frame curves) and the side-by-side frames (ground truth | output | error); and one
report aggregated over many videos' reports (a batch's)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np

from headsplat.core.errors import MissingDependencyError
from headsplat.core.fileio import atomic_path
from headsplat.eval.metrics import error_map
from headsplat.eval.protocol import ReenactResult

#: column name -> (heading, format, better), in table order.
COLUMNS = {
    "psnr_face": ("PSNR face (dB) ↑", "{:.2f}", "high"),
    "ssim_face": ("SSIM face ↑", "{:.3f}", "high"),
    "psnr": ("PSNR full (dB) ↑", "{:.2f}", "high"),
    "ssim": ("SSIM full ↑", "{:.3f}", "high"),
    "csim": ("CSIM ↑", "{:.3f}", "high"),
    "id_distance": ("ID dist ↓", "{:.3f}", "low"),
    "same_person": ("same person ↑", "{:.0%}", "high"),
    "nme": ("NME ↓", "{:.4f}", "low"),
    "akd_px": ("AKD px ↓", "{:.2f}", "low"),
    "aed": ("AED ↓", "{:.4f}", "low"),
    "apd_deg": ("APD ° ↓", "{:.2f}", "low"),
    "expression_corr": ("expr. corr ↑", "{:.3f}", "high"),
    "mouth_corr": ("mouth corr ↑", "{:.3f}", "high"),
    "blink_corr": ("blink corr ↑", "{:.3f}", "high"),
    "yaw_corr": ("yaw corr ↑", "{:.3f}", "high"),
    "pitch_corr": ("pitch corr ↑", "{:.3f}", "high"),
    "face_found": ("face found ↑", "{:.0%}", "high"),
}

#: Published VFHQ self-reenactment figures (full-frame PSNR/SSIM, ArcFace CSIM), for orientation only: other
#: videos, other crops and another identity network, so not comparable number for number.
PUBLISHED_VFHQ = {"LAM": (22.65, 0.829, 0.822), "GAGAvatar": (21.83, 0.818, 0.816),
                  "Portrait4D-v2": (21.34, 0.791, 0.803)}


def heat_map(a: np.ndarray, b: np.ndarray, max_error: float = 0.25) -> np.ndarray:
    """(H, W, 3) uint8 colour map (inferno) of the mean absolute error, saturating at ``max_error``."""
    e = np.clip(error_map(a, b) / max_error, 0, 1)
    return cv2.applyColorMap((e * 255 + 0.5).astype(np.uint8), cv2.COLORMAP_INFERNO)[..., ::-1].copy()


def side_by_side(panels: list[np.ndarray], height: int = 360) -> np.ndarray:
    """Panels (H_i, W_i, 3) uint8 scaled to one ``height`` (even widths) and put side by side."""
    out = []
    for p in panels:
        w = max(2, int(round(p.shape[1] * height / p.shape[0] / 2)) * 2)
        out.append(cv2.resize(p, (w, height), interpolation=cv2.INTER_AREA))
    return np.concatenate(out, 1)


def _clean(x):
    """JSON-safe: NaN/inf -> None, numpy -> Python."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, np.ndarray):
        return _clean(x.tolist())
    if isinstance(x, (np.floating, float)):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def report_dict(result: ReenactResult, settings: dict, environment: dict, timing: dict) -> dict:
    """Everything the report says, JSON-serialisable (NaN becomes null)."""
    return _clean({"format": "headsplat.eval-report", "version": 1, "protocol": result.kind,
                   "frames": result.frames, "summary": result.summary, "per_frame": result.per_frame,
                   "shots": result.shots,
                   "settings": settings, "environment": environment, "timing_s": timing})


def _fmt(key: str, value) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return COLUMNS[key][1].format(value)


def markdown(report: dict) -> str:
    """The report as Markdown: settings, then one table row per method (best value in bold)."""
    s = report["summary"]
    methods = list(s)
    keys = [k for k in COLUMNS if any(s[m].get(k) is not None for m in methods)]
    kind = "Self-reenactment" if report["protocol"] == "self" else "Cross-reenactment"
    st = report["settings"]
    lines = [f"# {kind}: {st.get('video') or st.get('driver')}", ""]
    for k, v in st.items():
        lines.append(f"- **{k}**: {v}")
    lines += [f"- **frames evaluated**: {len(report['frames'])}", ""]
    lines.append("| method | " + " | ".join(COLUMNS[k][0] for k in keys) + " |")
    lines.append("|---|" + "---|" * len(keys))
    for m in methods:
        cells = []
        for k in keys:
            vals = [s[x].get(k) for x in methods if s[x].get(k) is not None]
            v = s[m].get(k)
            best = v is not None and len(vals) > 1 and v == (max(vals) if COLUMNS[k][2] == "high" else min(vals))
            cells.append(f"**{_fmt(k, v)}**" if best else _fmt(k, v))
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines += _shot_table(report)
    lines += [""] + [f"- {n}" for n in report.get("notes", [])]
    env = report["environment"]
    lines += ["", "Environment: " + ", ".join(f"{k} {v}" for k, v in env.items()),
              "", "Timing (s): " + ", ".join(f"{k} {v}" for k, v in report["timing_s"].items()), ""]
    return "\n".join(lines)


SHOT_COLUMNS = (("psnr_face", "PSNR face", "{:.2f}"), ("ssim_face", "SSIM face", "{:.3f}"),
                ("csim", "CSIM", "{:.3f}"), ("mouth_corr", "mouth corr", "{:.2f}"),
                ("blink_corr", "blink corr", "{:.2f}"), ("yaw_corr", "yaw corr", "{:.2f}"))


def _shot_table(report: dict) -> list[str]:
    """Markdown lines of the per-shot table (none for a video of one shot)."""
    shots = report.get("shots") or []
    if len(shots) < 2:
        return []
    keys = [c for c in SHOT_COLUMNS if any(c[0] in f for s in shots for f in s["figures"].values())]
    lines = ["", f"Per shot ({len(shots)} shots found in the video):", "",
             "| shot | frames | method | " + " | ".join(c[1] for c in keys) + " |",
             "|---|---|---|" + "---|" * len(keys)]
    for s in shots:
        for m, f in s["figures"].items():
            cells = ["n/a" if f.get(k) is None else fmt.format(f[k]) for k, _, fmt in keys]
            lines.append(f"| {s['shot']} | {s['first']}-{s['last']} ({s['frames']}) | {m} | "
                         + " | ".join(cells) + " |")
    return lines


def plot(report: dict, path: Path) -> None:
    """Per-frame curves: face-region PSNR (self) or CSIM to the source (cross), and mouth/eye opening of the
    output against the reference's."""
    try:
        import matplotlib
    except ImportError as e:
        raise MissingDependencyError(f"the report's plot needs matplotlib ({e}): pip install 'headsplat[eval]'") \
            from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pf, frames = report["per_frame"], report["frames"]
    ref = "ground truth" if report["protocol"] == "self" else "driver"
    fig, axes = plt.subplots(3, 1, figsize=(9, 8), sharex=True)
    top = "psnr_face" if report["protocol"] == "self" else "csim"
    for m, series in pf.items():
        if top in series:
            axes[0].plot(frames[: len(series[top])], _nan(series[top]), label=m)
    axes[0].set_ylabel("PSNR face (dB)" if top == "psnr_face" else "CSIM to source")
    axes[0].legend(loc="best", fontsize=8)
    for ax, key, label in ((axes[1], "mouth", "mouth opening"), (axes[2], "eyes", "eye opening")):
        ax.plot(frames, _nan(pf[ref][key]), "k-", label=ref)
        ax.plot(frames, _nan(pf["headsplat"][key]), "C0-", label="headsplat")
        ax.set_ylabel(label)
        ax.legend(loc="best", fontsize=8)
    axes[2].set_xlabel("frame")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _nan(values) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], np.float64)


def write_report(report: dict, folder: Path) -> None:
    """report.json, report.md and plot.png into ``folder`` (the caller makes the folder atomic)."""
    (folder / "report.json").write_text(json.dumps(report, indent=1))
    (folder / "report.md").write_text(markdown(report))
    plot(report, folder / "plot.png")


def aggregate(reports: dict[str, dict], failed: dict[str, str] | None = None) -> dict:
    """One report over many videos (a batch's ``eval`` jobs, all of one protocol): per method, the mean of each
    figure over the videos (each video counts once; n/a values are left out and ``n`` says how many counted),
    and the per-video rows of every method.

    Args:
        reports: job name -> its report (what report.json holds).
        failed: job name -> error line, for the jobs that made no report.
    """
    if len({r["protocol"] for r in reports.values()}) > 1:
        raise ValueError("aggregate: reports of one protocol only")
    protocol = next(iter(reports.values()))["protocol"] if reports else None
    methods = list(dict.fromkeys(m for r in reports.values() for m in r["summary"]))
    per_video, mean = [], {}
    for job, r in reports.items():
        st = r.get("settings", {})
        per_video.append({"job": job, "video": st.get("video") or st.get("driver"), "frames": len(r["frames"]),
                          "figures": {m: {k: r["summary"][m].get(k) for k in COLUMNS if k in r["summary"][m]}
                                      for m in r["summary"]}})
    for m in methods:
        mean[m] = {}
        for k in COLUMNS:
            vals = [v["figures"][m][k] for v in per_video if m in v["figures"] and v["figures"][m].get(k) is not None]
            if vals:
                mean[m][k] = {"mean": float(np.mean(vals)), "n": len(vals)}
    return _clean({"format": "headsplat.eval-batch-report", "version": 1, "protocol": protocol,
                   "videos": len(reports), "frames": sum(v["frames"] for v in per_video), "mean": mean,
                   "per_video": per_video, "failed": dict(failed or {})})


def aggregate_markdown(agg: dict, title: str) -> str:
    """The aggregated report as Markdown: the means table (best in bold), then one table of each video's rows."""
    kind = {"self": "Self-reenactment", "cross": "Cross-reenactment"}.get(agg["protocol"], "Evaluation")
    lines = [f"# {kind}: {title}", "", f"- **videos**: {agg['videos']} ({agg['frames']} frames evaluated)",
             "- **means**: over the videos, each counting once; a figure n/a in a video is left out of its mean "
             "(the column's n counts the videos in it when some are)", ""]
    methods = list(agg["mean"])
    keys = [k for k in COLUMNS if any(k in agg["mean"][m] for m in methods)]
    if methods:
        lines.append("| method | " + " | ".join(COLUMNS[k][0] for k in keys) + " |")
        lines.append("|---|" + "---|" * len(keys))
        for m in methods:
            cells = []
            for k in keys:
                vals = [agg["mean"][x][k]["mean"] for x in methods if k in agg["mean"][x]]
                cell = agg["mean"][m].get(k)
                if cell is None:
                    cells.append("n/a")
                    continue
                text = _fmt(k, cell["mean"]) + (f" (n={cell['n']})" if cell["n"] < agg["videos"] else "")
                best = len(vals) > 1 and cell["mean"] == (max(vals) if COLUMNS[k][2] == "high" else min(vals))
                cells.append(f"**{text}**" if best else text)
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
    if agg["per_video"]:
        lines += ["", "Per video:", "", "| video | frames | method | " + " | ".join(COLUMNS[k][0] for k in keys)
                  + " |", "|---|---|---|" + "---|" * len(keys)]
        for v in agg["per_video"]:
            for m, f in v["figures"].items():
                lines.append(f"| {v['job']} | {v['frames']} | {m} | " + " | ".join(_fmt(k, f.get(k)) for k in keys)
                             + " |")
    if agg["failed"]:
        lines += ["", "Failed (no report):", ""] + [f"- {j}: {e}" for j, e in agg["failed"].items()]
    return "\n".join(lines) + "\n"


def write_aggregate(agg: dict, folder: Path, stem: str, title: str) -> list[Path]:
    """``STEM.json`` and ``STEM.md`` of an aggregated report into ``folder``, each written atomically."""
    paths = [folder / f"{stem}.json", folder / f"{stem}.md"]
    for path, text in zip(paths, (json.dumps(agg, indent=1), aggregate_markdown(agg, title))):
        with atomic_path(path) as tmp:
            tmp.write_text(text)
    return paths
