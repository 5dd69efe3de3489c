"""GAGAvatar (Chu & Harada, NeurIPS 2024): one-shot Gaussian heads from the authors' released checkpoint."""

from headsplat.models.gagavatar.model import GAGAvatar, GagaConfig, SourceGaussians

__all__ = ["GAGAvatar", "GagaConfig", "SourceGaussians"]
