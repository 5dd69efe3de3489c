"""CAP4D (Taubner et al., CVPR 2025): the morphable multi-view diffusion model run by headsplat's own code."""
