"""EG3D's layer (Chan et al. 2022) shared by the triplane models run from released weights (Portrait4D-v2,
OmniAvatar): StyleGAN2 parts and their image ops, super-resolution, the OSG decoder and the volume renderer.

Classes take the reference's constructor arguments and have its ``state_dict()`` keys; conventions (camera
frame, plane axes, sample ranges) are named arguments each model states once (see :mod:`.rendering`).
"""

from headsplat.models.eg3d.rendering import (
    EG3D_PLANES,
    OPENCV,
    OPENGL,
    XY_YZ_ZX,
    XYZ_YZX_XZY,
    ImportanceRenderer,
    OSGDecoder,
    RenderOptions,
    RenderOutput,
    SplitOSGDecoder,
    sample_from_planes,
    sample_from_volplanes,
    sample_rays,
)
from headsplat.models.eg3d.stylegan2 import (
    FullyConnectedLayer,
    Generator,
    MappingNetwork,
    SynthesisBlock,
    SynthesisLayer,
    SynthesisNetwork,
    ToRGBLayer,
    modulated_conv2d,
)
from headsplat.models.eg3d.superresolution import SUPERRESOLUTION, SuperresolutionHybrid8XDC

__all__ = ["EG3D_PLANES", "OPENCV", "OPENGL", "XY_YZ_ZX", "XYZ_YZX_XZY", "FullyConnectedLayer", "Generator",
           "ImportanceRenderer", "MappingNetwork", "OSGDecoder", "RenderOptions", "RenderOutput", "SUPERRESOLUTION",
           "SplitOSGDecoder", "SuperresolutionHybrid8XDC", "SynthesisBlock", "SynthesisLayer", "SynthesisNetwork",
           "ToRGBLayer", "modulated_conv2d", "sample_from_planes", "sample_from_volplanes", "sample_rays"]
