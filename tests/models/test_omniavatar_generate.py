"""The ``omniavatar`` generator on a tiny network pickled in the released structure, its prior SDF replaced by the
exact distance to a FLAME-layout head placed by a known similarity (a random network's prior is no head): one view
set per identity labelled in headsplat's FLAME (the alignment recovered, the views' head poses projecting FLAME
where the network's cameras see it), one identity across sets, no label pool, a FLAME of another version warned
about, the refusals, and ``create --views`` from the views alone."""

import json

import numpy as np
import pytest
import torch

from headsplat.api import generate
from headsplat.avatar.generators import omniavatar as omniavatar_generator
from headsplat.avatar.generators.omniavatar import flame_vertices, identity_controls, read_labels
from headsplat.avatar.viewset import read_view_set
from headsplat.cli.main import main
from headsplat.core.camera import project_points
from headsplat.core.errors import HeadsplatError, InputError
from headsplat.models.omniavatar import OmniAvatar, look_at_camera
from headsplat.models.omniavatar.flame_map import FlameAlignment
from headsplat.models.omniavatar.model import FFHQ_3DMM_FOCAL
from headsplat.rig.factory import make_rig
from headsplat.rig.flame.model import FlameRig
from tests.models.test_omniavatar import TINY_INIT, seeded_state, tiny_model, write_pickle
from tests.models.test_omniavatar_flame_map import TRUE, analytic_prior


def test_identity_controls_keep_the_shape_and_zero_the_neck():
    labels = np.random.RandomState(0).randn(6, 231).astype(np.float32)
    own, rows, controls = identity_controls(labels, 4)
    assert controls.shape == (3, 206) and rows[0] == own
    np.testing.assert_array_equal(controls[:, :100], np.repeat(labels[own:own + 1, 25:125], 3, 0))
    np.testing.assert_array_equal(controls[1, 100:200], labels[rows[1], 125:225])
    assert not controls[:, 200:203].any()
    same_id = [identity_controls(labels, 4, s) for s in (10, 11)]
    assert same_id[0][0] == same_id[1][0] == own and same_id[0][1][1:] != same_id[1][1][1:]
    none, rows, neutral = identity_controls(None, 4, 9)
    assert none is None and rows == [] and not neutral[0].any() and 0.1 <= neutral[1, 203] <= 0.3


@pytest.fixture(scope="module")
def omni(tmp_path_factory, flame_head_file):
    """The tiny network's pickle, a label pool in the FLAME-like file's span, and the analytic prior."""
    tmp = tmp_path_factory.mktemp("omni")
    model = tiny_model()
    model.load_state_dict(seeded_state(model))
    write_pickle(tmp / "omni.pkl", {"G_ema": model}, TINY_INIT)
    g = np.random.RandomState(1)
    labels = np.zeros((5, 231), np.float32)
    labels[:, 25:45] = g.randn(5, 20) * 0.5  # shape
    labels[:, 125:165] = g.randn(5, 40) * 0.5  # expression
    labels[:, 225:228] = g.randn(5, 3) * 0.1  # neck (zeroed by the generator)
    labels[:, 228] = np.abs(g.randn(5)) * 0.1  # jaw
    np.save(tmp / "labels.npy", labels)
    rig = FlameRig.from_file(flame_head_file, n_shape=100, n_expr=100)
    return {"weights": tmp / "omni.pkl", "labels": tmp / "labels.npy", "flame": flame_head_file, "rig": rig,
            "prior": analytic_prior(rig, **TRUE)}


@pytest.fixture
def patched(omni, monkeypatch):
    monkeypatch.setattr(OmniAvatar, "prior_sdf", lambda self, points, controls: omni["prior"](points, controls))
    monkeypatch.setattr(omniavatar_generator, "N_EXPRESSIONS", 2)  # 2 expressions an identity: time
    return omni


@pytest.fixture
def views(patched, tmp_path):
    return generate(None, tmp_path / "views", model="omniavatar", weights=patched["weights"],
                    labels=patched["labels"], flame_model=patched["flame"], yaws=(0, 30), pitches=(0,), count=2,
                    seed=3, quiet=True)


def test_view_sets_are_labelled_in_flame_where_the_network_sees_it(views, patched):
    head = make_rig("flame", patched["flame"])
    for i in range(2):
        vs = read_view_set(views / f"identity_{i:03d}")
        tr, gen = vs.tracking, vs.generator
        assert len(vs) == 4 and tr.rig == "flame" and gen["seed"] == 3 + i and gen["identity_seed"] == 3 + i
        assert tuple(tr.expression_names) == head.expression_names and vs.load(0)[0].shape == (128, 128, 3)
        a = gen["flame_alignment"]
        assert abs(a["scale"] / TRUE["scale"] - 1) < 2e-3 and a["rms_mm"] < 0.5
        np.testing.assert_allclose(a["offset"], TRUE["offset"].numpy(), atol=1e-3)
        assert max(gen["expression_fit_rms_mm"]) < 0.5
        controls = np.asarray(tr.extra["omniavatar"]["controls"])
        np.testing.assert_allclose(tr.identity, controls[0, :100], rtol=1e-6)
        assert not controls[:, 200:203].any()  # the neck
        # each view's track poses headsplat's FLAME where the network's camera sees the aligned FLAME
        align = FlameAlignment(a["scale"], np.asarray(a["rotation"]), np.asarray(a["offset"]), 0, 0)
        with torch.no_grad():
            world = align.world(flame_vertices(patched["rig"], controls).double())
        K = torch.tensor([[FFHQ_3DMM_FOCAL * 128, 0, 64], [0, FFHQ_3DMM_FOCAL * 128, 64], [0, 0, 1]],
                         dtype=torch.float64)
        cam, p = tr.camera(torch.float64), tr.params(dtype=torch.float64)
        for j, (e, yaw) in enumerate(((0, 0), (0, 30), (1, 0), (1, 30))):
            c2w = look_at_camera(np.pi / 2 + np.radians(yaw), np.pi / 2, [0, 0, 0.2], 2.7)[0].double()
            want, _ = project_points(world[e], torch.linalg.inv(c2w), K)
            with torch.no_grad():
                v = head.double()(p["identity"], p["scale"], p["expression"][j], p["rotation"][j],
                                  p["translation"][j]).vertices[:len(world[e])]
            got, _ = project_points(v, cam.viewmat, cam.K)
            assert (got - want).abs().max() < 0.5, (i, j)


def test_create_fits_an_avatar_to_the_views_alone(views, patched, tmp_path, monkeypatch):
    from headsplat.avatar.config import PRESETS
    from tests.avatar.test_many_views import TINY_MANY

    monkeypatch.setitem(PRESETS, "fast", TINY_MANY)  # a small fit of the same code: what is fitted is the point
    out = tmp_path / "omni.avatar"
    assert main(["-q", "create", "--views", str(views / "identity_000"), "--rig", "flame", "--flame-model",
                 str(patched["flame"]), "-o", str(out)]) == 0
    info = json.loads((out / "avatar.json").read_text())["info"]
    assert info["views"]["generated"] == 4 and info["views"]["share"] == 1.0 and info["frames"] == []


def test_one_identity_across_view_sets_and_no_label_pool(patched, tmp_path):
    out = generate(None, tmp_path / "one", model="omniavatar", weights=patched["weights"], labels=patched["labels"],
                   flame_model=patched["flame"], yaws=(0,), pitches=(0,), count=2, seed=1, identity_seed=8,
                   quiet=True)  # seeds 1 and 2 draw other expression rows than each other
    a, b = (read_view_set(out / f"identity_{i:03d}") for i in range(2))
    assert a.generator["identity_seed"] == b.generator["identity_seed"] == 8
    assert a.generator["identity_row"] == b.generator["identity_row"]
    np.testing.assert_array_equal(a.tracking.identity, b.tracking.identity)
    assert a.generator["label_rows"][1] != b.generator["label_rows"][1]
    assert not np.array_equal(a.load(1)[0], b.load(1)[0])  # other expressions
    np.testing.assert_array_equal(a.load(0)[0], b.load(0)[0])  # the identity's own row, the same latent
    bare = read_view_set(generate(None, tmp_path / "bare", model="omniavatar", weights=patched["weights"],
                                  flame_model=patched["flame"], yaws=(0,), pitches=(0,), quiet=True) / "identity_000")
    jaw = list(bare.tracking.expression_names).index("jaw_rx")
    assert not bare.tracking.identity.any() and bare.generator["labels"] is None
    assert abs(bare.tracking.expression[0, jaw]) < 1e-3 and 0.08 < bare.tracking.expression[1, jaw] < 0.32


def test_a_flame_of_another_version_is_warned_about(omni, monkeypatch, tmp_path):
    from dataclasses import replace

    from headsplat.rig.flame.loader import load_flame_file

    data = load_flame_file(omni["flame"], n_shape=100, n_expr=100)
    other = FlameRig(replace(data, v_template=data.v_template * np.array([1.0, 1.1, 0.92], np.float32)))
    prior = analytic_prior(other, **TRUE)
    monkeypatch.setattr(OmniAvatar, "prior_sdf", lambda self, points, controls: prior(points, controls))
    with pytest.warns(UserWarning, match="another FLAME version"):
        generate(None, tmp_path / "v", model="omniavatar", weights=omni["weights"], flame_model=omni["flame"],
                 yaws=(0,), pitches=(0,), quiet=True)


def test_refusals(omni, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("HEADSPLAT_OMNIAVATAR_WEIGHTS", raising=False)
    with pytest.raises(InputError, match="HEADSPLAT_OMNIAVATAR_WEIGHTS"):
        generate(None, tmp_path / "v", model="omniavatar", flame_model=omni["flame"])
    with pytest.raises(HeadsplatError, match="takes no source"):
        generate(omni["labels"], tmp_path / "v", model="omniavatar", weights=omni["weights"])
    with pytest.raises(HeadsplatError, match="--count"):
        generate(None, tmp_path / "v", model="omniavatar", weights=omni["weights"], count=0)
    np.save(tmp_path / "short.npy", np.zeros((3, 30), np.float32))
    with pytest.raises(InputError, match="label rows"):
        read_labels(tmp_path / "short.npy")
    assert main(["generate", "--model", "omniavatar", "--weights", str(omni["weights"]), "--flame-model",
                 str(omni["flame"]), "--labels", str(tmp_path / "short.npy"), "-o", str(tmp_path / "v")]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "short.npy" in err[0] and not (tmp_path / "v").exists()
    assert main(["create", "-o", str(tmp_path / "x.avatar")]) != 0
    assert "--views VIEWS" in capsys.readouterr().err
