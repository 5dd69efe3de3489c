"""CAP4D (Taubner et al., CVPR 2025): the morphable multi-view diffusion model run by headsplat's own code,
with its FLAME, conditioning maps, views and assets converted at this package's boundary."""
