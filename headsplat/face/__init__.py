"""Perception: face detection, the 478 MediaPipe face-mesh landmarks, a foreground matte and square crops
(and pasting a crop back into its frame)."""

from headsplat.face.align import CropTransform, crop_from_landmarks, paste_back, warp_to_crop
from headsplat.face.assets import BundledModel, bundled_face_models
from headsplat.face.frontend import Detection, FaceNets, MeshResult
from headsplat.face.landmarks import FaceLandmarks, LandmarkDetector
from headsplat.face.segment import Matter

__all__ = ["BundledModel", "bundled_face_models", "Detection", "FaceNets", "MeshResult", "FaceLandmarks",
           "LandmarkDetector", "Matter", "CropTransform", "crop_from_landmarks", "warp_to_crop", "paste_back"]
