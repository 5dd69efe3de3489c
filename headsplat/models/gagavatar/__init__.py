"""GAGAvatar (Chu & Harada, NeurIPS 2024): one-shot Gaussian heads from the authors' released checkpoint,
its network and its camera conventions converted at this package's boundary."""

from headsplat.models.gagavatar.model import GagaConfig, GAGAvatar, SourceGaussians

__all__ = ["GAGAvatar", "GagaConfig", "SourceGaussians"]
