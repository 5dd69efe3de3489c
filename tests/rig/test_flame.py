"""FLAME: safe loading of official-layout files, validation, version detection, and the skinned model."""

import math
import pickle
import sys

import numpy as np
import pytest
import torch

from headsplat.core.errors import InputError
from headsplat.core.rotation import axis_angle_to_matrix
from headsplat.rig.flame.loader import ENV_VAR, load_flame_file, resolve_flame_model
from headsplat.rig.flame.model import FlameRig


def test_loads_the_official_layout_without_chumpy(tmp_path, synthetic_flame):
    path = synthetic_flame(tmp_path / "generic_model.pkl")
    assert b"chumpy.ch\nCh" in path.read_bytes() and b"scipy.sparse.csc\ncsc_matrix" in path.read_bytes()
    assert b"numpy.core.multiarray\n_reconstruct" in path.read_bytes()
    data = load_flame_file(path)
    assert "chumpy" not in sys.modules
    assert data.version == "FLAME 2020"
    assert data.shapedirs.shape == (120, 3, 300) and data.exprdirs.shape == (120, 3, 100)
    assert data.posedirs.shape == (36, 360) and data.J_regressor.shape == (5, 120)
    assert data.parents.tolist() == [-1, 0, 1, 1, 1]
    np.testing.assert_allclose(data.J_regressor.sum(1), 1.0, rtol=1e-6)
    for name, version in [("flame2023.pkl", "FLAME 2023"), ("flame2023_no_jaw.pkl", "FLAME 2023 (no jaw)"),
                          ("flame2023_Open.pkl", "FLAME 2023 Open")]:
        assert load_flame_file(synthetic_flame(tmp_path / name)).version == version


def test_refuses_any_other_global_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            import os
            return os.system, (f"touch {marker}",)

    (tmp_path / "evil.pkl").write_bytes(pickle.dumps({"v_template": Evil()}, protocol=2))
    with pytest.raises(InputError, match=r"evil.pkl: refusing global (posix|os|nt)\.system"):
        load_flame_file(tmp_path / "evil.pkl")
    assert not marker.exists()


@pytest.mark.parametrize("change, message", [
    (dict(drop=("weights",)), "not a FLAME model file: missing weights"),
    (dict(extra={"weights": np.zeros((120, 4))}), r"weights has shape \(120, 4\), expected \(120, 5\)"),
    (dict(extra={"posedirs": np.zeros((120, 3, 35))}), r"posedirs has shape \(120, 3, 35\), expected \(120, 3, 36\)"),
    (dict(extra={"f": np.array([[0, 1, 500]])}), "faces index vertices outside"),
])
def test_wrong_contents_say_exactly_what_is_wrong(tmp_path, synthetic_flame, change, message):
    path = synthetic_flame(tmp_path / "generic_model.pkl", **change)
    with pytest.raises(InputError, match=message):
        load_flame_file(path)


def test_truncated_and_foreign_files(tmp_path, synthetic_flame):
    raw = synthetic_flame(tmp_path / "generic_model.pkl").read_bytes()
    (tmp_path / "cut.pkl").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(InputError, match="cut.pkl: not a readable FLAME model file"):
        load_flame_file(tmp_path / "cut.pkl")
    (tmp_path / "list.pkl").write_bytes(pickle.dumps([1, 2, 3], protocol=2))
    with pytest.raises(InputError, match="list.pkl: not a FLAME model file"):
        load_flame_file(tmp_path / "list.pkl")
    with pytest.raises(InputError, match="asked for 300 and 101"):
        load_flame_file(tmp_path / "generic_model.pkl", n_expr=101)


def test_model_zero_pose_is_the_template_and_global_rotation_turns_about_the_root(tmp_path, synthetic_flame):
    rig = FlameRig.from_file(synthetic_flame(tmp_path / "generic_model.pkl"), n_shape=20, n_expr=10)
    z = torch.zeros
    out = rig(z(20), z(10), z(3), z(3), z(3), z(6), z(3))
    assert torch.allclose(out.vertices, rig.v_template, atol=1e-7)
    assert torch.allclose(out.transforms, torch.eye(4).expand(5, 4, 4), atol=1e-7)
    # Identity and expression blend shapes add linearly.
    shape = torch.randn(20) * 0.5
    o2 = rig(shape, z(10), z(3), z(3), z(3), z(6), z(3))
    assert torch.allclose(o2.vertices - rig.v_template, torch.einsum("s,vcs->vc", shape, rig.shapedirs), atol=1e-6)
    # A global rotation with nothing else posed turns the whole head rigidly about the root joint.
    aa = torch.tensor([0.2, -0.5, 0.1])
    R = axis_angle_to_matrix(aa)
    o3 = rig(z(20), z(10), aa, z(3), z(3), z(6), torch.tensor([0.0, 0.1, -1.0]))
    j0 = out.joints[0]
    expect = (rig.v_template - j0) @ R.T + j0 + torch.tensor([0.0, 0.1, -1.0])
    assert torch.allclose(o3.vertices, expect, atol=1e-6)


def test_jaw_moves_only_jaw_weighted_vertices_and_gradients_flow(tmp_path, synthetic_flame):
    rig = FlameRig.from_file(synthetic_flame(tmp_path / "generic_model.pkl"), n_shape=5, n_expr=5).double()
    z = lambda n: torch.zeros(n, dtype=torch.float64)  # noqa: E731
    rest = rig(z(5), z(5), z(3), z(3), z(3), z(6), z(3)).vertices
    jaw = torch.tensor([math.radians(20), 0, 0], dtype=torch.float64)
    opened = rig(z(5), z(5), z(3), z(3), jaw, z(6), z(3)).vertices
    moved = (opened - rest).norm(dim=-1) > 1e-6
    jaw_w = rig.weights[:, 2] > 0
    # vertices move through the jaw's skinning weight or through the pose correctives; the jaw ones move most
    assert (opened - rest).norm(dim=-1)[jaw_w].mean() > 10 * (opened - rest).norm(dim=-1)[~jaw_w].mean()
    assert moved[jaw_w].all()

    def fn(shape, expr, pose):
        return rig(shape, expr, pose[:3], pose[3:6], pose[6:9], pose[9:], z(3)).vertices

    args = (torch.randn(5, dtype=torch.float64, requires_grad=True) * 0.1,
            torch.randn(5, dtype=torch.float64, requires_grad=True) * 0.1,
            (torch.randn(15, dtype=torch.float64) * 0.2).requires_grad_(True))
    assert torch.autograd.gradcheck(fn, tuple(a.detach().requires_grad_(True) for a in args))


def _reference_lbs(rig, shape, expr, pose):
    """FLAME written out the long way (numpy, per joint and per vertex loops, Rodrigues by hand)."""
    v_t = rig.v_template.double().numpy()
    v = v_t + rig.shapedirs.double().numpy() @ shape + rig.exprdirs.double().numpy() @ expr
    J = rig.J_regressor.double().numpy() @ v

    def rodrigues(r):
        a = np.linalg.norm(r)
        if a < 1e-12:
            return np.eye(3)
        k = r / a
        K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
        return np.eye(3) + math.sin(a) * K + (1 - math.cos(a)) * K @ K

    R = [rodrigues(r) for r in pose]
    feat = np.concatenate([(R[j] - np.eye(3)).ravel() for j in range(1, 5)])
    v = v + (feat @ rig.posedirs.double().numpy()).reshape(-1, 3)
    G = []
    for j in range(5):
        local = np.eye(4)
        local[:3, :3] = R[j]
        local[:3, 3] = J[j] - (J[rig.parents[j]] if j else 0)
        G.append(local if j == 0 else G[rig.parents[j]] @ local)
    out = np.zeros_like(v)
    w = rig.weights.double().numpy()
    for i in range(len(v)):
        T = np.zeros((4, 4))
        for j in range(5):
            A = G[j].copy()
            A[:3, 3] -= G[j][:3, :3] @ J[j]
            T += w[i, j] * A
        out[i] = T[:3, :3] @ v[i] + T[:3, 3]
    return out


def test_skinning_matches_a_straightforward_reference_and_subsets_agree(tmp_path, synthetic_flame):
    rig = FlameRig.from_file(synthetic_flame(tmp_path / "generic_model.pkl"), n_shape=8, n_expr=6).double()
    rng = np.random.default_rng(0)
    shape, expr = rng.normal(size=8), rng.normal(size=6)
    pose = rng.normal(scale=0.3, size=(5, 3))
    t = lambda x: torch.from_numpy(np.asarray(x, np.float64))  # noqa: E731
    out = rig(t(shape), t(expr), t(pose[0]), t(pose[1]), t(pose[2]), t(pose[3:].ravel()), t([0.0, 0.0, 0.0]))
    ref = _reference_lbs(rig, shape, expr, pose)
    assert np.abs(out.vertices.numpy() - ref).max() < 1e-10
    ids = torch.tensor([5, 0, 77, 3])
    sub = rig(t(shape), t(expr), t(pose[0]), t(pose[1]), t(pose[2]), t(pose[3:].ravel()), t([0.0, 0.0, 0.0]),
              vertex_ids=ids)
    assert torch.allclose(sub.vertices, out.vertices[ids], atol=1e-12)


def test_model_file_resolution(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    with pytest.raises(InputError, match="no FLAME model file given: pass --flame-model PATH"):
        resolve_flame_model(None)
    (tmp_path / "cfg" / "headsplat").mkdir(parents=True)
    (tmp_path / "cfg" / "headsplat" / "config.json").write_text('{"flame_model": "/data/flame2023_Open.pkl"}')
    assert str(resolve_flame_model(None)) == "/data/flame2023_Open.pkl"
    monkeypatch.setenv(ENV_VAR, "/env/generic_model.pkl")
    assert str(resolve_flame_model(None)) == "/env/generic_model.pkl"
    assert str(resolve_flame_model(tmp_path / "given.pkl")) == str(tmp_path / "given.pkl")


def test_doctor_describes_the_flame_file_or_fails_with_the_reason(tmp_path, synthetic_flame, capsys, monkeypatch):
    from headsplat.cli.main import main

    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    path = synthetic_flame(tmp_path / "flame2023_Open.pkl")
    main(["doctor", "--flame-model", str(path)])
    out = capsys.readouterr().out
    assert "FLAME 2023 Open: 120 vertices" in out and "300 shape and 100 expression coefficients" in out
    (tmp_path / "bad.pkl").write_bytes(b"\x80\x02}q\x00.")  # an empty dict
    assert main(["doctor", "--flame-model", str(tmp_path / "bad.pkl")]) == 1
    assert "bad.pkl: not a FLAME model file: missing v_template" in capsys.readouterr().out


def _mediapipe_head_as_flame(tmp_path, synthetic_flame, scale=1.08, angle_deg=6.0, shift=(0.004, -0.02, 0.01)):
    """A FLAME-layout file whose template is the open rig's head moved by a known similarity: the embedding
    must find each MediaPipe landmark on its own (moved) vertex."""
    from headsplat.rig.open_rig import OpenRig

    rig = OpenRig()
    v = rig.template.double().numpy()
    f = rig.triangles.numpy()
    a = math.radians(angle_deg)
    R = np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    moved = scale * v @ R.T + np.array(shift)
    n = len(moved)
    path = synthetic_flame(tmp_path / "flame2023_Open.pkl", n_verts=n, extra={
        "v_template": moved, "f": f.astype(np.uint32)})
    return path, moved, f


def test_embedding_finds_the_landmarks_on_a_registered_surface(tmp_path, synthetic_flame):
    from headsplat.face.indices import NOSE_TIP
    from headsplat.rig.flame.embedding import LandmarkEmbedding, compute_embedding, flame_embedding, load_embedding_npz
    from headsplat.rig.open_rig import load_face_template

    path, moved, faces = _mediapipe_head_as_flame(tmp_path, synthetic_flame)
    mp, _, _ = load_face_template()
    emb = compute_embedding(moved, faces, mp, int(np.atleast_1d(NOSE_TIP)[0]))
    pts = emb.points(torch.from_numpy(moved), torch.from_numpy(faces)).numpy()
    # The 468 mesh landmarks land on their own vertices; the 10 iris points are not on any surface (they
    # project onto the closed eyelids), so they are left out of the check.
    err_mm = np.linalg.norm(pts[:468] - moved[:468], axis=1) * 1000
    assert emb.rms_mm < 0.5 and err_mm.max() < 0.2, (emb.rms_mm, err_mm.max())
    # computed once, then read from the cache beside the settings
    cache = tmp_path / "cache"
    first = flame_embedding(path, moved, faces, cache_dir=cache)
    assert len(list(cache.glob("flame_mediapipe_embedding_*.npz"))) == 1
    again = flame_embedding(path, moved, faces, cache_dir=cache)
    assert np.array_equal(first.face_idx, again.face_idx)
    # a user file in the common layout overrides it, and is validated
    np.savez(tmp_path / "mine.npz", lmk_face_idx=np.array([3, 4]), lmk_b_coords=np.full((2, 3), 1 / 3),
             landmark_indices=np.array([1, 2]))
    mine = flame_embedding(path, moved, faces, override=tmp_path / "mine.npz")
    assert isinstance(mine, LandmarkEmbedding) and mine.landmark_indices.tolist() == [1, 2]
    np.savez(tmp_path / "bad.npz", lmk_face_idx=np.array([3]))
    with pytest.raises(InputError, match="bad.npz: landmark embedding without lmk_b_coords, landmark_indices"):
        load_embedding_npz(tmp_path / "bad.npz")


def test_a_converted_flame_pt_reads_like_the_official_pickle(tmp_path, flame_head_file):
    """GAGAvatar's FLAME_with_eye.pt layout: FLAME's arrays as tensors under "flame_model" (shapedirs with the
    expression directions appended, posedirs (V, 3, 36), dense J_regressor), read with weights_only."""
    from headsplat.rig.flame.loader import load_flame_file

    d = load_flame_file(flame_head_file, n_shape=20, n_expr=10)
    full = load_flame_file(flame_head_file)
    nv = d.v_template.shape[0]
    t = torch.from_numpy
    converted = {"flame_model": {
        "f": t(d.faces), "v_template": t(d.v_template),
        "shapedirs": t(np.concatenate([full.shapedirs, full.exprdirs], 2)),
        "posedirs": t(d.posedirs.T.reshape(nv, 3, -1).copy()), "J_regressor": t(d.J_regressor),
        "kintree_table": t(np.stack([np.where(d.parents < 0, 4294967295, d.parents), np.arange(5)])),
        "weights": t(d.weights)}, "lmk_embeddings": {"static_lmk_faces_idx": torch.zeros(51, dtype=torch.long)}}
    torch.save(converted, tmp_path / "FLAME_with_eye.pt")
    c = load_flame_file(tmp_path / "FLAME_with_eye.pt", n_shape=20, n_expr=10)
    for k in ("v_template", "faces", "shapedirs", "exprdirs", "posedirs", "J_regressor", "parents", "weights"):
        assert np.array_equal(getattr(c, k), getattr(d, k)), k
    assert c.version == "FLAME 2020 (converted, .pt)"
    torch.save({"something": 1}, tmp_path / "other.pt")
    with pytest.raises(InputError, match="expected a dict with a 'flame_model' entry"):
        load_flame_file(tmp_path / "other.pt")
