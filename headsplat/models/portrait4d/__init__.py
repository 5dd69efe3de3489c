"""Portrait4D-v2 (Deng et al., ECCV 2024): its reconstructor's networks run by headsplat's own code from the
authors' released persistence pickle (read by :mod:`headsplat.models.persistence`), on the EG3D layer
(:mod:`headsplat.models.eg3d`)."""
