"""Per-shot figures in eval reports."""

import numpy as np

from headsplat.eval.protocol import ReenactResult, shot_figures
from headsplat.eval.report import markdown, report_dict


def test_per_shot_means_and_correlations_and_table():
    t = np.arange(12, dtype=np.float64)
    ref_mouth = np.sin(t)
    per_frame = {"headsplat": {"psnr_face": np.r_[np.full(6, 30.0), np.full(6, 20.0)],
                               "mouth": np.r_[ref_mouth[:6], -ref_mouth[6:]], "eyes": np.full(12, 0.3)},
                 "ground truth": {"mouth": ref_mouth, "eyes": np.full(12, 0.3)}}
    frames = list(range(1, 13))  # frame 0 was the source
    shots = np.r_[np.zeros(7, int), np.ones(6, int)]  # video frames 0..12, a cut at 7
    out = shot_figures(per_frame, frames, shots, "ground truth")
    assert [(s["first"], s["last"], s["frames"]) for s in out] == [(1, 6, 6), (7, 12, 6)]
    a, b = out[0]["figures"]["headsplat"], out[1]["figures"]["headsplat"]
    assert a["psnr_face"] == 30.0 and b["psnr_face"] == 20.0
    assert a["mouth_corr"] > 0.99 and b["mouth_corr"] < -0.99
    assert np.isnan(a["blink_corr"])  # the eyes do not move: nothing to follow
    rep = report_dict(ReenactResult("self", frames, {"headsplat": {"psnr_face": 25.0}}, per_frame, out),
                      {"video": "v.mp4"}, {}, {})
    md = markdown(rep)
    assert "Per shot (2 shots found in the video)" in md
    assert "| 1 | 7-12 (6) | headsplat | 20.00 | -1.00 | n/a |" in md
