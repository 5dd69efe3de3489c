"""headsplat.face.nets against the graphs they were converted from.

Always run: the shipped weights load strictly and the networks run (shapes, determinism, batching); a
weights file that does not match is refused by key name; every network reproduces the outputs its .tflite
graph gave on fixed inputs (recorded in tests/face/data by tools/record_face_nets_reference.py), so the
networks stay pinned once mediapipe is gone. With the references installed: every network
equals its ``.tflite`` graph, run by LiteRT (``pip install ai-edge-litert``) or, for the face mesh whose
custom ops LiteRT lacks, by MediaPipe's own FaceLandmarkCpu graph; and the converter reproduces the shipped
files byte for byte from the installed mediapipe wheel.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from headsplat.face.nets import BlazeFace, FaceMeshNet, SelfieSegmenter, WeightsError
from headsplat.face.nets.blazeface import FULL_RANGE, SHORT_RANGE, decode_detections, ssd_anchors, weighted_nms
from headsplat.face.nets.graph import DATA

ROOT = Path(__file__).resolve().parents[2]
MODELS = {  # headsplat name -> (constructor, mediapipe file)
    "selfie_segmentation": (lambda: SelfieSegmenter(), "selfie_segmentation/selfie_segmentation.tflite"),
    "selfie_segmentation_landscape": (lambda: SelfieSegmenter(landscape=True),
                                      "selfie_segmentation/selfie_segmentation_landscape.tflite"),
    "face_detection_short_range": (lambda: BlazeFace(), "face_detection/face_detection_short_range.tflite"),
    "face_detection_full_range": (lambda: BlazeFace(full_range=True),
                                  "face_detection/face_detection_full_range_sparse.tflite"),
    "face_landmark_with_attention": (lambda: FaceMeshNet(), "face_landmark/face_landmark_with_attention.tflite"),
}
@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # These small networks gain nothing from intra-op threads, and on a shared, busy machine the threads'
    # spinning makes each pass many times slower.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def nets(one_thread):
    return {name: make() for name, (make, _) in MODELS.items()}


def _to_input(rgb: np.ndarray, value_range: tuple[float, float]) -> torch.Tensor:
    lo, hi = value_range
    return torch.from_numpy(rgb.astype(np.float32) / 255.0 * (hi - lo) + lo)[None]


def _mediapipe_modules() -> Path | None:
    spec = importlib.util.find_spec("mediapipe")
    return Path(list(spec.submodule_search_locations)[0]) / "modules" if spec else None


def _reference_tool():
    spec = importlib.util.spec_from_file_location("record_face_nets_reference",
                                                  ROOT / "tools" / "record_face_nets_reference.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


# -- always run: the shipped files ------------------------------------------------------------------------------
def test_data_folder_carries_the_licence():
    assert "Apache License" in (DATA / "LICENSE").read_text()
    notice = (DATA / "NOTICE").read_text()
    for name, (_, rel) in MODELS.items():
        assert (DATA / f"{name}.safetensors").is_file() and rel.split("/")[1] in notice
    total = sum((DATA / f"{n}.safetensors").stat().st_size for n in MODELS)
    assert total < 6_000_000  # a few MB: fp16 weights as released


@pytest.mark.parametrize("name", sorted(MODELS))
def test_networks_run_deterministically_and_batch(nets, name):
    net = nets[name]
    h, w = net.input_size
    g = torch.Generator().manual_seed(0)
    lo, hi = net.input_range
    x = torch.rand(2, h, w, 3, generator=g) * (hi - lo) + lo
    with torch.no_grad():
        a, b = net(x), net(x)
        one = net(x[1:])
    flat = lambda out: [out] if isinstance(out, torch.Tensor) else list(vars(out).values())  # noqa: E731
    for ta, tb, t1 in zip(flat(a), flat(b), flat(one)):
        assert ta.shape[0] == 2 and torch.isfinite(ta).all()
        assert torch.equal(ta, tb)
        torch.testing.assert_close(ta[1:], t1, atol=1e-4, rtol=1e-4)
    if name.startswith("selfie"):
        assert a.shape == (2, h, w) and 0 <= a.min() and a.max() <= 1
    elif name.startswith("face_detection"):
        anchors = 896 if "short" in name else 2304
        assert a.regressors.shape == (2, anchors, 16) and a.logits.shape == (2, anchors)
    else:
        assert a.mesh.shape == (2, 468, 3) and a.lips.shape == (2, 80, 2) and a.left_iris.shape == (2, 5, 2)
        assert net.refine(a).shape == (2, 478, 3)


@pytest.mark.parametrize("name", ["face_landmark_with_attention", "selfie_segmentation"])
def test_the_traced_graph_equals_the_op_by_op_run(name):
    """After ``trace_after`` calls of one shape the graph runs as a trace: the same outputs, on inputs other
    than the one it was traced on (no value of an input is baked into it)."""
    net = MODELS[name][0]()
    h, w = net.input_size
    g = torch.Generator().manual_seed(3)
    xs = [torch.rand(1, h, w, 3, generator=g) for _ in range(5)]
    flat = lambda out: [out] if isinstance(out, torch.Tensor) else list(vars(out).values())  # noqa: E731
    net.trace_after = None
    with torch.inference_mode():
        want = [flat(net(x)) for x in xs]
        net.trace_after = 2
        got = [flat(net(x)) for x in xs]
    assert len(net._traced) == 1  # calls 3-5 ran the trace
    for a, b in zip(got, want):
        for ta, tb in zip(a, b):
            torch.testing.assert_close(ta, tb, atol=1e-5, rtol=1e-5)
    with torch.enable_grad():
        assert net(xs[0].requires_grad_()) is not None  # with gradients: op by op, not the trace


def test_state_dict_keys_are_the_files_keys(nets):
    from safetensors import safe_open

    for name, net in nets.items():
        with safe_open(str(DATA / f"{name}.safetensors"), "pt") as f:
            assert sorted(f.keys()) == sorted(net.state_dict())


def test_wrong_weights_are_refused_by_name(tmp_path):
    from safetensors.torch import load_file, save_file

    name = "face_detection_short_range"
    (tmp_path / f"{name}.json").write_bytes((DATA / f"{name}.json").read_bytes())
    state = load_file(str(DATA / f"{name}.safetensors"))
    state.pop("conv3.bias")
    state["conv999.weight"] = torch.zeros(1)
    state["dwconv0.weight"] = torch.zeros(7, 1, 3, 3)
    save_file(state, str(tmp_path / f"{name}.safetensors"))
    with pytest.raises(WeightsError, match=r"missing: conv3\.bias; unexpected: conv999\.weight; "
                                           r"wrong shape: dwconv0\.weight"):
        BlazeFace(data_dir=tmp_path)
    BlazeFace(data_dir=tmp_path, weights=False)  # the graph alone still builds


def test_unknown_ops_are_refused_when_built():
    from headsplat.face.nets.graph import TfliteGraph, load_spec

    spec = load_spec("face_detection_short_range")
    spec["ops"] = spec["ops"] + [{"op": "CUSTOM:MaxPoolingWithArgmax2D", "inputs": [], "outputs": []}]
    with pytest.raises(NotImplementedError, match="face_detection_short_range: .*MaxPoolingWithArgmax2D"):
        TfliteGraph(spec)


def test_wrong_input_shape_is_refused(nets):
    from headsplat.core.errors import ShapeError

    with pytest.raises(ShapeError, match=r"expected shape \(B, 128, 128, 3\), got \(1, 3, 128, 128\)"):
        nets["face_detection_short_range"](torch.zeros(1, 3, 128, 128))


def test_anchors_match_the_networks_outputs(nets):
    short, full = ssd_anchors(SHORT_RANGE), ssd_anchors(FULL_RANGE)
    assert short.shape == (896, 2) and full.shape == (2304, 2)
    # Short range: 16x16 cells with 2 anchors each, then 8x8 cells with 6; centres at cell centres.
    torch.testing.assert_close(short[:2], torch.tensor([[0.5 / 16, 0.5 / 16]] * 2))
    torch.testing.assert_close(short[512:518], torch.tensor([[0.5 / 8, 0.5 / 8]] * 6))
    torch.testing.assert_close(full[48], torch.tensor([0.5 / 48, 1.5 / 48]))


def test_weighted_nms_merges_overlaps_by_score():
    boxes = torch.tensor([[0.1, 0.1, 0.5, 0.5], [0.12, 0.1, 0.52, 0.5], [0.6, 0.6, 0.9, 0.9]])
    kps = boxes[:, None, :2].repeat(1, 6, 1)
    scores = torch.tensor([0.6, 0.9, 0.7])
    out = weighted_nms(boxes, kps, scores, 0.3)
    torch.testing.assert_close(out.scores, torch.tensor([0.9, 0.7]))
    merged = (0.6 * boxes[0] + 0.9 * boxes[1]) / 1.5
    torch.testing.assert_close(out.boxes, torch.stack([merged, boxes[2]]))
    torch.testing.assert_close(out.keypoints[0, 3], merged[:2])
    empty = weighted_nms(boxes[:0], kps[:0], scores[:0], 0.3)
    assert empty.boxes.shape == (0, 4) and empty.keypoints.shape == (0, 6, 2)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_equals_the_recorded_tflite_outputs(nets, name):
    """Without mediapipe or LiteRT: the outputs the .tflite graphs gave on fixed inputs, recorded by
    tools/record_face_nets_reference.py (LiteRT; MediaPipe's own graph for the face mesh)."""
    tool = _reference_tool()
    ref = np.load(ROOT / "tests" / "face" / "data" / "nets_reference.npz")
    rgb = tool.reference_input(name)
    if tool.sha256(rgb) != str(ref[f"{name}/input_sha256"]):
        pytest.skip("this OpenCV/scikit-image makes another input than the recorded one")
    net = nets[name]
    with torch.no_grad():
        out = net(_to_input(rgb, net.input_range))
    if name.startswith("selfie"):
        err = float((out[0, ::4, ::4] - torch.from_numpy(ref[f"{name}/mask_every_4th"])).abs().max())
        assert err < 2e-4, err
    elif name.startswith("face_detection"):
        logits = torch.from_numpy(ref[f"{name}/logits"])
        top = torch.from_numpy(ref[f"{name}/top_anchors"])
        assert float((out.logits[0] - logits).abs().max()) < 2e-4 * max(1.0, float(logits.abs().max()))
        regressors = torch.from_numpy(ref[f"{name}/top_regressors"])
        assert float((out.regressors[0, top] - regressors).abs().max()) < 2e-4 * float(regressors.abs().max())
    else:
        err = float((net.refine(out)[0] - torch.from_numpy(ref[f"{name}/landmarks"])).abs().max())
        assert err < 192 * 1e-5, f"{err} px"


# -- with the references installed ------------------------------------------------------------------------------
def _litert_outputs(path: Path, x: np.ndarray) -> dict[str, np.ndarray]:
    interpreter = pytest.importorskip("ai_edge_litert.interpreter", reason="LiteRT (pip install ai-edge-litert) "
                                      "is the tflite reference").Interpreter(str(path))
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    by_name = {d["name"]: interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()}
    return by_name


@pytest.mark.parametrize("name", ["selfie_segmentation", "selfie_segmentation_landscape",
                                  "face_detection_short_range", "face_detection_full_range"])
def test_equals_the_tflite_graph(nets, name):
    modules = _mediapipe_modules()
    if modules is None:
        pytest.skip("mediapipe is not installed: its wheel holds the .tflite files")
    net = nets[name]
    h, w = net.input_size
    lo, hi = net.input_range
    rng = np.random.default_rng(1)
    photo = _reference_tool().reference_input(name)
    noisy = np.clip(photo.astype(np.int16) + rng.integers(-40, 41, photo.shape), 0, 255).astype(np.uint8)
    inputs = {"astronaut": _to_input(photo, net.input_range).numpy(),
              "astronaut+noise": _to_input(noisy, net.input_range).numpy(),
              "random": (rng.random((1, h, w, 3), dtype=np.float32) * (hi - lo) + lo).astype(np.float32)}
    report = []
    for label, x in inputs.items():
        ref = _litert_outputs(modules / MODELS[name][1], x)
        with torch.no_grad():
            ours = net.run_graph(torch.from_numpy(x))
        for spec, y in zip(net.spec["outputs"], ours):
            r = ref[spec["name"]]
            err = float(np.abs(r - y.numpy()).max())
            scale = float(np.abs(r).max())
            report.append(f"{label}/{spec['name']}: max abs error {err:.2e} (outputs up to {scale:.3g})")
            # Logits and pixel offsets reach a few hundred, probabilities 1: float32 summation order (ours vs
            # XNNPACK's) leaves up to ~1e-4 absolute (measured <= 1.3e-4 at 200, 7e-5 at 1).
            assert err <= 2e-4 * max(1.0, scale), report[-1]
    print(f"\n{name}: " + "; ".join(report))


def test_face_mesh_equals_mediapipe(nets):
    if _mediapipe_modules() is None:
        pytest.skip("mediapipe is not installed: its FaceLandmarkCpu graph is the reference")
    net = nets["face_landmark_with_attention"]
    tool = _reference_tool()
    crop = tool.reference_input("face_landmark_with_attention")
    rng = np.random.default_rng(2)
    noisy = np.clip(crop.astype(np.int16) + rng.integers(-40, 41, crop.shape), 0, 255).astype(np.uint8)
    report = []
    for label, rgb in (("astronaut", crop), ("astronaut+noise", noisy)):
        ref = tool.mediapipe_face_landmarks(rgb)
        assert ref is not None, f"MediaPipe found no face in the {label} crop"
        with torch.no_grad():
            out = net(_to_input(rgb, net.input_range))
        ours = net.refine(out)[0].numpy()
        err_xy = float(np.abs(ours[:, :2] - ref[:, :2]).max())
        err_z = float(np.abs(ours[:, 2] - ref[:, 2]).max())
        report.append(f"{label}: max abs error x,y {err_xy:.2e} px, z {err_z:.2e} px "
                      f"({err_xy / 192:.1e} in crop units)")
        assert err_xy < 192 * 1e-5 and err_z < 192 * 1e-5, report[-1]
        assert torch.sigmoid(out.face_logit) > 0.5
    print("\nface_landmark_with_attention vs MediaPipe FaceLandmarkCpu: " + "; ".join(report))


def test_detections_equal_mediapipe_face_detection(nets):
    """Network + anchors + decoding + weighted NMS against MediaPipe's FaceDetection solution, on square
    images at the network's size (MediaPipe's letterboxing is then the identity)."""
    if _mediapipe_modules() is None:
        pytest.skip("mediapipe is not installed: its FaceDetection solution is the reference")
    import cv2
    from skimage import data

    os.environ.setdefault("GLOG_minloglevel", "2")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from mediapipe.python.solutions import face_detection
    images = {"astronaut": data.astronaut()}
    group = ROOT / ".test-assets" / "insightface" / "t1.jpg"  # a group photo: several faces
    if group.is_file():
        images["t1"] = cv2.cvtColor(cv2.imread(str(group)), cv2.COLOR_BGR2RGB)
    report = []
    for name, config, selection in (("face_detection_short_range", SHORT_RANGE, 0),
                                    ("face_detection_full_range", FULL_RANGE, 1)):
        net = nets[name]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            detector = face_detection.FaceDetection(model_selection=selection)
        for label, img in images.items():
            small = cv2.resize(img, (config.input_size,) * 2, interpolation=cv2.INTER_AREA)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                found = detector.process(small).detections or []
            ref = np.array([[d.location_data.relative_bounding_box.xmin, d.location_data.relative_bounding_box.ymin,
                             d.location_data.relative_bounding_box.xmin + d.location_data.relative_bounding_box.width,
                             d.location_data.relative_bounding_box.ymin + d.location_data.relative_bounding_box.height,
                             d.score[0], *[c for p in d.location_data.relative_keypoints for c in (p.x, p.y)]]
                            for d in found], np.float32).reshape(-1, 17)
            with torch.no_grad():
                faces = decode_detections(net(_to_input(small, net.input_range)), config)[0]
            ours = torch.cat([faces.boxes, faces.scores[:, None], faces.keypoints.reshape(-1, 12)], 1).numpy()
            assert len(ours) == len(ref) >= 1, f"{name} on {label}: {len(ours)} faces, MediaPipe {len(ref)}"
            err = float(np.abs(ours - ref).max())
            report.append(f"{name}/{label}: {len(ref)} faces, max abs error {err:.1e}")
            assert err < 1e-5, report[-1]
        detector.close()
    print("\nvs MediaPipe FaceDetection: " + "; ".join(report))


def test_converter_reproduces_the_shipped_files(tmp_path):
    if _mediapipe_modules() is None:
        pytest.skip("mediapipe is not installed: the converter reads its wheel's .tflite files")
    pytest.importorskip("tflite", reason="the converter reads flatbuffers with the tflite schema package")
    spec = importlib.util.spec_from_file_location("convert_mediapipe", ROOT / "tools" / "convert_mediapipe.py")
    convert = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(convert)
    root, version = convert.mediapipe_root()
    shipped_version = __import__("json").loads((DATA / "selfie_segmentation.json").read_text())["source"]["version"]
    if version != shipped_version:
        pytest.skip(f"the shipped files come from mediapipe {shipped_version}, {version} is installed")
    convert.convert_all(tmp_path, root, version)
    for name in MODELS:
        for ext in ("safetensors", "json"):
            assert (tmp_path / f"{name}.{ext}").read_bytes() == (DATA / f"{name}.{ext}").read_bytes(), (name, ext)
