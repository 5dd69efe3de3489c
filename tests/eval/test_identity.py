import itertools

import cv2
import numpy as np
import pytest

from headsplat.core.errors import MissingDependencyError
from headsplat.eval.identity import SAME_PERSON_DISTANCE, IdentityEncoder, cosine_similarity, descriptor_distance
from headsplat.face import LandmarkDetector
from headsplat.media.image import read_image_uint8

pytest.importorskip("dlib", reason="the evaluation extra is not installed: pip install 'headsplat[eval]'")


@pytest.fixture(scope="module")
def encoder():
    return IdentityEncoder()


def _faces(img):
    with LandmarkDetector("image") as det:
        return [f.points for f in det.detect_all(img)]


def test_same_person_close_different_people_far(encoder, insightface_dir):
    from skimage import data

    astro = data.astronaut()
    # The same photo mirrored and at 60% size: another view of the same person.
    small = np.ascontiguousarray(cv2.resize(astro[:, ::-1], (307, 307), interpolation=cv2.INTER_AREA))
    hanks = read_image_uint8(insightface_dir / "Tom_Hanks_54745.png")
    group = read_image_uint8(insightface_dir / "t1.jpg")
    e_astro = encoder(astro, _faces(astro)[0])
    e_small = encoder(small, _faces(small)[0])
    e_hanks = encoder(hanks, _faces(hanks)[0])
    group_faces = _faces(group)
    assert len(group_faces) >= 3
    e_people = [encoder(group, f) for f in group_faces] + [e_hanks, e_astro]  # all different people
    assert e_astro.shape == (128,)
    assert descriptor_distance(e_astro, e_small) < 0.35
    assert descriptor_distance(e_astro, e_hanks) > SAME_PERSON_DISTANCE
    pairs = [descriptor_distance(a, b) for a, b in itertools.combinations(e_people, 2)]
    # Different people: on average well apart, and every pair further than the same person.
    assert np.mean(pairs) > 0.7
    assert min(pairs) > descriptor_distance(e_astro, e_small) + 0.2
    assert cosine_similarity(e_astro, e_small) > cosine_similarity(e_astro, e_hanks)


def test_missing_landmarks_give_nan(encoder):
    from skimage import data

    assert np.isnan(encoder(data.astronaut(), np.full((478, 3), np.nan))).all()


def test_missing_models_name_the_install_command(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "face_recognition_models" else real(name, *a))
    with pytest.raises(MissingDependencyError, match=r"pip install 'headsplat\[eval\]'"):
        IdentityEncoder()
