"""Portrait4D-v2 (Deng et al., ECCV 2024): its reconstructor's networks run by headsplat's own code from the
authors' released persistence pickle (read by :mod:`headsplat.models.persistence`), on the EG3D layer
(:mod:`headsplat.models.eg3d`)."""

from headsplat.models.portrait4d.model import Portrait4D, Portrait4DConfig, Portrait4DOutput

__all__ = ["Portrait4D", "Portrait4DConfig", "Portrait4DOutput"]
