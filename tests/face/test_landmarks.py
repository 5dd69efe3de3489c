import numpy as np
import pytest

from headsplat.core.errors import MissingDependencyError
from headsplat.face import LandmarkDetector, bundled_face_models, crop_from_landmarks, paste_back, warp_to_crop
from headsplat.face.indices import interocular
from headsplat.media.image import read_image_uint8


@pytest.fixture(scope="module")
def detector():
    with LandmarkDetector("image") as d:
        yield d


def test_bundled_models_are_listed_with_their_checksums():
    models = {m.name: m for m in bundled_face_models()}
    assert set(models) == {"face_detection_short_range", "face_detection_full_range", "face_landmark_with_attention",
                           "selfie_segmentation", "selfie_segmentation_landscape"}
    mesh = models["face_landmark_with_attention"]
    assert mesh.source["file"].endswith("face_landmark_with_attention.tflite") and mesh.source["version"] == "0.10.14"
    assert len(mesh.sha256) == 64 and mesh.path.stat().st_size > 1_000_000


def test_a_missing_bundled_model_is_named(tmp_path):
    with pytest.raises(MissingDependencyError, match=r"face_detection_short_range\.safetensors: the bundled face "
                                                     r"model is missing; reinstall headsplat"):
        bundled_face_models(tmp_path)


def test_no_mediapipe_is_imported(astronaut_path):
    """The front end is headsplat's own: tracking a photo never imports mediapipe (nor protobuf)."""
    import subprocess
    import sys

    code = ("import sys\nfrom headsplat.face import LandmarkDetector, Matter\n"
            "from headsplat.media.image import read_image_uint8\n"
            f"img = read_image_uint8({str(astronaut_path)!r})\n"
            "assert LandmarkDetector()(img) is not None and Matter()(img).mean() > 0.1\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('mediapipe', 'google')))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]" and r.stderr == "", (r.stdout, r.stderr)


def test_astronaut_landmarks(detector, astronaut_path):
    img = read_image_uint8(astronaut_path)
    lm = detector(img)
    assert lm is not None and lm.points.shape == (478, 3)
    # The face of skimage's astronaut lies in x 170..290, y 40..200 of the 512x512 photo.
    x, y = lm.points[:, 0], lm.points[:, 1]
    assert 165 < x.min() and x.max() < 300 and 35 < y.min() and y.max() < 210
    assert 35 < float(interocular(lm.points[:, :2])) < 60


def test_real_faces_and_no_face(detector, insightface_dir):
    assert detector(read_image_uint8(insightface_dir / "Tom_Hanks_54745.png")) is not None
    for name in ("mask_white.jpg", "mask_blue.jpg", "mask_black.jpg"):
        assert detector(read_image_uint8(insightface_dir / name)) is None


def test_group_photo_finds_several_faces_largest_first(insightface_dir):
    img = read_image_uint8(insightface_dir / "t1.jpg")
    with LandmarkDetector("image") as d:
        faces = d.detect_all(img)
    assert len(faces) >= 3
    sizes = [f.size for f in faces]
    assert sizes == sorted(sizes, reverse=True)
    with LandmarkDetector("image", face=1) as d:
        second = d(img)
    assert second is not None and np.allclose(second.box, faces[1].box, atol=2)


def test_crop_round_trip_and_paste_back(detector, astronaut_path):
    img = read_image_uint8(astronaut_path)
    lm = detector(img)
    crop = crop_from_landmarks(lm.points, size=256)
    c = warp_to_crop(img, crop)
    assert c.shape == (256, 256, 3)
    # the nose tip lands near the crop's centre column
    nose = crop.apply(lm.points[1:2, :2])[0]
    assert abs(nose[0] - 128) < 20
    # pasting the unchanged crop back with full alpha reproduces the frame inside the crop
    back = paste_back(img, c, np.ones((256, 256), np.float32), crop, feather=0)
    x0, y0 = crop.inverse() @ np.array([64, 64, 1.0])
    x1, y1 = crop.inverse() @ np.array([192, 192, 1.0])
    region = (slice(int(y0), int(y1)), slice(int(x0), int(x1)))
    assert np.abs(back[region].astype(int) - img[region].astype(int)).mean() < 4
