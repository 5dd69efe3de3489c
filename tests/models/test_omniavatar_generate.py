"""The ``omniavatar`` generator on a tiny network pickled in the released structure: one view set per identity,
the views' head poses from the exact cameras, the label pool's rows as controls, and its refusals."""

import numpy as np
import pytest

from headsplat.api import generate
from headsplat.avatar.generators import omniavatar as omniavatar_generator
from headsplat.avatar.generators.omniavatar import camera_to_head_pose, identity_controls, read_labels
from headsplat.avatar.viewset import read_view_set
from headsplat.core.errors import HeadsplatError, InputError
from headsplat.models.omniavatar import look_at_camera
from tests.models.test_omniavatar import TINY_INIT, seeded_state, tiny_model, write_pickle


def test_the_frontal_camera_is_the_unrotated_head_in_front_of_the_camera():
    rot, trans = camera_to_head_pose(look_at_camera(np.pi / 2, np.pi / 2, [0, 0, 0.2], 2.7)[0].numpy())
    np.testing.assert_allclose(rot, 0, atol=1e-6)
    np.testing.assert_allclose(trans, [0, 0, -2.7], atol=1e-6)  # tracking's camera looks down -z
    rot, _ = camera_to_head_pose(look_at_camera(np.pi / 2 + 0.3, np.pi / 2, [0, 0, 0], 2.7)[0].numpy())
    np.testing.assert_allclose(np.abs(rot), [0, 0.3, 0], atol=1e-5)  # a yaw of the camera turns the head about y


def test_identity_controls_keep_the_shape_and_zero_the_neck():
    labels = np.random.RandomState(0).randn(6, 231).astype(np.float32)
    own, rows, controls = identity_controls(labels, 4)
    assert controls.shape == (3, 206) and rows[0] == own
    np.testing.assert_array_equal(controls[:, :100], np.repeat(labels[own:own + 1, 25:125], 3, 0))
    np.testing.assert_array_equal(controls[1, 100:200], labels[rows[1], 125:225])
    assert not controls[:, 200:203].any()


def test_generate_writes_a_view_set_per_identity(tmp_path, monkeypatch):
    monkeypatch.setattr(omniavatar_generator, "N_EXPRESSIONS", 2)  # 2 views an identity: time
    model = tiny_model()
    model.load_state_dict(seeded_state(model))
    write_pickle(tmp_path / "omni.pkl", {"G_ema": model}, TINY_INIT)
    labels = tmp_path / "labels.npy"
    np.save(labels, (np.random.RandomState(1).randn(5, 231) * 0.3).astype(np.float32))
    out = generate(labels, tmp_path / "views", model="omniavatar", weights=tmp_path / "omni.pkl", yaws=(0,),
                   pitches=(0,), count=2, seed=3, quiet=True)
    for i in range(2):
        vs = read_view_set(out / f"identity_{i:03d}")
        assert len(vs) == 2 and vs.tracking.rig == "flame" and vs.generator["seed"] == 3 + i
        rgb, alpha = vs.load(0)
        assert rgb.shape == (128, 128, 3) and alpha is None
        np.testing.assert_allclose(vs.tracking.translation, [[0, 0, -2.7]] * 2, atol=1e-5)
        assert vs.tracking.expression.shape == (2, 109)
        controls = np.asarray(vs.tracking.extra["omniavatar"]["controls"])
        np.testing.assert_allclose(vs.tracking.identity, controls[0, :100], rtol=1e-6)
        np.testing.assert_allclose(vs.tracking.expression[:, 100:103], controls[:, 203:206], rtol=1e-6)  # jaw
    with pytest.raises(HeadsplatError, match="--weights"):
        generate(labels, tmp_path / "v2", model="omniavatar")
    np.save(tmp_path / "short.npy", np.zeros((3, 30), np.float32))
    with pytest.raises(InputError, match="label rows"):
        read_labels(tmp_path / "short.npy")
