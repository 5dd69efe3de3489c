"""MediaPipe's face networks (detector, mesh, segmenter) in PyTorch, from weights converted once from the
released ``.tflite`` files (``headsplat/face/data``, Apache-2.0); no mediapipe runtime needed."""

from headsplat.face.nets.blazeface import BlazeFace, BlazeFaceOutput
from headsplat.face.nets.facemesh import FaceMeshNet, FaceMeshOutput
from headsplat.face.nets.graph import ConvertedNetwork, TfliteGraph, WeightsError
from headsplat.face.nets.selfie import SelfieSegmenter

__all__ = ["BlazeFace", "BlazeFaceOutput", "ConvertedNetwork", "FaceMeshNet", "FaceMeshOutput", "SelfieSegmenter",
           "TfliteGraph", "WeightsError"]
