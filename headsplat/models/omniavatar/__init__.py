"""OmniAvatar (Xu et al., CVPR 2023): its FLAME-controlled 3D head GAN run by headsplat's own code from the authors'
persistence pickle (read by :mod:`headsplat.models.persistence`), on the EG3D layer (:mod:`headsplat.models.eg3d`)."""

from headsplat.models.omniavatar.im3dmm import IGRModel, sdf_density
from headsplat.models.omniavatar.model import (
    CONTROLS,
    N_CAMERA,
    N_CONTROLS,
    OmniAvatar,
    OmniAvatarConfig,
    OmniAvatarOutput,
    look_at_camera,
    make_label,
)

__all__ = ["CONTROLS", "N_CAMERA", "N_CONTROLS", "IGRModel", "OmniAvatar", "OmniAvatarConfig", "OmniAvatarOutput",
           "look_at_camera", "make_label", "sdf_density"]
