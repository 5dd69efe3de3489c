"""``headsplat generate --model cap4d`` end to end through the CLI with a tiny MMDM of the same code, the trackable
FLAME-layout test head padded to FLAME's 5023 vertices and CAP4D-style assets made for it; then ``create --views``.

At full size (random weights in the released layout, the same CLI) it ran on an H200: debug preset in bf16 25 s,
low preset (210 views, 50 steps, 1500 model calls) 132 s (see the issue note)."""

import json

import numpy as np
import pytest
import torch

from headsplat.cli.main import main


@pytest.fixture(scope="module")
def env(flame_head_file, astronaut_path, tmp_path_factory):
    from conftest import pad_flame_file, write_cap4d_assets

    from headsplat.models.cap4d.model import MMDM, MMDMConfig

    root = tmp_path_factory.mktemp("cap4d")
    flame = pad_flame_file(flame_head_file, root / "flame2023_no_jaw.pkl")
    assets = write_cap4d_assets(root / "assets", flame, n_generated=20)
    torch.manual_seed(0)
    m = MMDM(MMDMConfig.tiny())
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    weights = root / "tiny_mmdm.ckpt"
    torch.save({"state_dict": m.state_dict(), "headsplat_config": m.cfg.to_dict()}, weights)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HEADSPLAT_CACHE_DIR", str(root / "cache"))
        mp.setenv("XDG_CONFIG_HOME", str(root / "config"))
        mp.setenv("HEADSPLAT_CAP4D_ASSETS", str(assets))
        for var in ("HEADSPLAT_CAP4D_WEIGHTS", "HEADSPLAT_FLAME_MODEL"):
            mp.delenv(var, raising=False)
        yield dict(flame=flame, assets=assets, weights=weights, photo=astronaut_path, root=root)


def _args(env, *extra):
    return ["-q", "generate", str(env["photo"]), "--model", "cap4d", "--weights", str(env["weights"]),
            "--flame-model", str(env["flame"]), *extra]


@pytest.fixture(scope="module")
def view_set(env):
    out = env["root"] / "views"
    assert main(_args(env, "--views", "5", "--steps", "2", "-o", str(out))) == 0
    return out


def test_generate_writes_a_cropped_view_set(view_set, env):
    from headsplat.avatar.viewset import read_view_set

    vs = read_view_set(view_set)
    # one reference: groups of 8 - 1 = 7, so 5 asked for become 7
    assert len(vs) == 7 and vs.cropped and set(vs.kinds) == {"generated"}
    g = vs.generator
    assert g["name"] == "cap4d" and g["steps"] == 2 and g["weights"] == "tiny_mmdm.ckpt"
    assert max(g["reference_fit_mm"]) < 2.0 and g["generated_fit_mm"] < 2.0  # the parameter conversions
    img, matte = vs.load(0)
    assert img.shape == (64, 64, 3) and matte is None and img.std() > 0
    assert json.loads((view_set / "views.json").read_text())["version"] == 2
    assert list((env["root"] / "cache" / "cap4d").glob("*.safetensors"))  # converted once for the next run


def test_each_views_camera_frames_the_head_as_cap4ds_crop(view_set, env):
    """Posed with the view set's parameters and seen through its crop camera, headsplat's FLAME head fills the
    crop as CAP4D's head crop does: its head vertices' box centred, its longer side the crop over 1.2 (CAP4D's
    margin); and the views look at the head from different sides."""
    from headsplat.avatar.frames import crop_camera
    from headsplat.avatar.viewset import read_view_set
    from headsplat.core.camera import project_points
    from headsplat.models.cap4d.assets import load_assets
    from headsplat.rig.flame.head import FlameHead

    vs = read_view_set(view_set)
    head = FlameHead.from_file(env["flame"])
    heads = load_assets(env["assets"]).head_vertices
    tr = vs.tracking
    p = tr.params()
    for i in range(len(vs)):
        cam, _ = crop_camera(tr, i, 64)
        with torch.no_grad():
            v = head(p["identity"], p["scale"], p["expression"][i], p["rotation"][i], p["translation"][i]).vertices
        uv, _ = project_points(v[heads].double(), cam.viewmat.double(), cam.K.double())
        lo, hi = uv.min(0).values, uv.max(0).values
        assert ((lo + hi) / 2 - 32).abs().max() < 1.5, i
        assert abs(float((hi - lo).max()) - 64 / 1.2) < 1.5, i
    yaws = np.degrees(tr.rotation[:, 1])
    assert np.ptp(yaws) > 20


def test_create_fits_an_avatar_to_the_photo_and_the_cap4d_views(view_set, env, tmp_path, monkeypatch):
    from headsplat.avatar.config import PRESETS
    from tests.avatar.test_many_views import TINY_MANY

    monkeypatch.setitem(PRESETS, "fast", TINY_MANY)  # a small fit of the same code: what is fitted is the point
    out = tmp_path / "me.avatar"
    assert main(["-q", "create", str(env["photo"]), "--views", str(view_set), "--rig", "flame", "--flame-model",
                 str(env["flame"]), "-o", str(out)]) == 0
    info = json.loads((out / "avatar.json").read_text())
    assert info["info"]["views"]["generated"] == 7


def test_missing_assets_or_weights_are_one_line_errors_and_nothing_is_written(env, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("HEADSPLAT_CAP4D_ASSETS")
    out = tmp_path / "views"
    assert main(_args(env, "-o", str(out))) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--cap4d-assets" in err[0] and not out.exists()
    args = _args(env, "--cap4d-assets", str(env["assets"]), "-o", str(out))
    args[args.index("--weights") + 1] = str(tmp_path / "none.ckpt")
    assert main(args) != 0
    assert "none.ckpt: CAP4D weights file not found" in capsys.readouterr().err and not out.exists()


def test_doctor_checks_the_cap4d_assets(env, tmp_path, capsys):
    main(["doctor", "--cap4d-assets", str(env["assets"])])
    line = [r for r in capsys.readouterr().out.splitlines() if "CAP4D assets" in r][0]
    assert line.startswith("ok") and "20 generation expressions" in line
    main(["doctor", "--cap4d-assets", str(tmp_path)])
    line = [r for r in capsys.readouterr().out.splitlines() if "CAP4D assets" in r][0]
    assert not line.startswith("ok") and "cap4d_flame_template.obj not found" in line


def test_cap4d_options_are_refused_elsewhere_and_size_for_cap4d(env, tmp_path, capsys):
    assert main(["-q", "generate", str(env["photo"]), "--model", "gagavatar", "--preset", "low", "--steps", "10",
                 "-o", str(tmp_path / "v")]) != 0
    assert "--preset: not an option of the gagavatar generator" in capsys.readouterr().err
    assert main(_args(env, "--size", "256", "-o", str(tmp_path / "v"))) != 0
    assert "--size: not an option of the cap4d generator" in capsys.readouterr().err
    assert not (tmp_path / "v").exists()
