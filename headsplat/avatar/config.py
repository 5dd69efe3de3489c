"""How an avatar is fitted: :class:`CreateConfig` and its named presets."""

from __future__ import annotations

from dataclasses import dataclass, field

from headsplat.splat.density import DensityConfig


@dataclass(frozen=True)
class CreateConfig:
    """How an avatar is fitted. Presets: ``PRESETS["fast"]`` (the default) and ``PRESETS["quality"]``.

    One photo is fitted with ``iterations`` steps. From ``min_frames_dynamic`` frames or views on, the fit also
    grows and prunes Gaussians (``density``), learns an expression-dependent deformation field (when the frames'
    expressions vary) and per-frame corrections of the real frames' tracked pose and expression, and runs
    ``iterations_per_frame`` steps per frame up to ``max_iterations``.
    """

    size: int = 256  # side of the square crop the Gaussians are fitted at, px
    n_gaussians: int = 20000  # Gaussians seeded on the rig by area
    iterations: int = 300  # optimiser steps for one frame (the least for many)
    max_frames: int = 60  # most frames used from a video or a set of photos (chosen to cover poses/expressions)
    ssim_weight: float = 0.2  # share of D-SSIM in the photometric loss (3DGS uses 0.2)
    alpha_weight: float = 0.5  # weight of |alpha - matte| inside the head region
    position_weight: float = 1.0  # keeps Gaussians within about one triangle of their parent
    max_local_distance: float = 1.0  # local distance (triangle units) beyond which position_weight applies
    surface_weight: float = 100.0  # times position_weight: Gaussians on eyeballs, teeth, eye and mouth rims...
    surface_depth: float = 0.05  # ... stay within this of their triangle's plane (triangle units) ...
    surface_radius: float = 0.6  # ... and of its origin in the plane ...
    surface_max_scale: float = 0.35  # ... and below this size (triangle units)
    eye_rim_weight: float = 100.0  # times position_weight: Gaussians on the lids next to the eye opening...
    eye_rim_radius: float = 0.35  # ... stay within this of their triangle's origin in its plane (not over the iris)
    eye_rim_max_scale: float = 0.15  # ... and below this size (triangle units)
    scale_weight: float = 1.0  # keeps Gaussians below about one triangle in size
    max_local_scale: float = 1.0  # local scale (triangle units) beyond which scale_weight applies
    max_anisotropy: float = 4.0  # largest axis of a Gaussian at most this many times its middle one
    lr_position: float = 0.05  # learning rates; positions and scales are in units of the parent triangle
    lr_scale: float = 0.02
    lr_rotation: float = 0.003
    lr_opacity: float = 0.05
    lr_color: float = 0.01
    output_size: int = 512  # side of the avatar's reference framing for rendering
    # -- many frames --------------------------------------------------------------------------------------------
    min_frames_dynamic: int = 4  # frames (real + generated) from which density control, deformation, refinement run
    iterations_per_frame: int = 12  # steps per frame with many frames (30 scored 0.1-0.3 dB lower on held-out frames)
    max_iterations: int = 2400  # at most this many steps
    lr_position_decay: float = 0.01  # many frames: the position learning rate falls exponentially to this share
    density: DensityConfig = field(default_factory=lambda: DensityConfig(max_gaussians=30000))
    sh_degree_span: float = 25.0  # degrees of head yaw the frames must span for view-dependent colour (SH degree 1)
    deformation_rank: int = 16  # size of the deformation field's code (0: no field)
    deformation_hidden: int = 64  # hidden width of its network
    deformation_min_spread: float = 0.1  # expression std over the frames below which no field is learned
    lr_deformation: float = 0.002
    deformation_weight: float = 1.0  # penalty on the field's position offsets (triangle units, squared)
    deformation_smooth_weight: float = 10.0  # penalty on differences between neighbouring Gaussians' bases
    refine_min_frames: int = 4  # real frames from which per-frame pose/expression corrections are fitted
    lr_refine: float = 0.003
    refine_start: float = 0.3  # share of the steps before corrections start (the appearance must settle first)
    refine_weight: float = 1.0  # penalty on the corrections (radians, metres x 10, coefficients; squared)
    refine_translation_factor: float = 10.0  # translation corrections are penalised in metres times this


PRESETS = {
    "fast": CreateConfig(),
    "quality": CreateConfig(size=512, n_gaussians=40000, iterations=600, max_iterations=4000,
                            iterations_per_frame=40, density=DensityConfig(max_gaussians=100000)),
}
