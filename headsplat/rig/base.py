"""The head-rig interface: what tracking, avatars, rendering and evaluation use on a rig, whichever it is
(:class:`~headsplat.rig.open_rig.OpenRig` or :class:`~headsplat.rig.flame.head.FlameHead`), and its output.

Members that only one rig has (the open rig's face mesh and free offsets, FLAME's model file) are not part of
:class:`HeadRig`; code that needs them takes that rig's own class.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import torch


@dataclass(frozen=True)
class RigOutput:
    """Posed rig.

    Attributes:
        vertices: (..., V, 3) posed vertices in world space.
        neutral: (..., V, 3) identity shape before expression and pose (head space).
    """

    vertices: torch.Tensor
    neutral: torch.Tensor


@runtime_checkable
class HeadRig(Protocol):
    """A head rig: topology (``triangles``, plus ``mouth_triangles`` that only avatars bind to) and a pure
    function of per-subject parameters (``rig(identity, scale, expression, rotation, translation)``) to posed
    vertices. Both rigs are ``torch.nn.Module``s holding buffers only; ``to`` moves them.

    Attributes:
        kind: ``"open"`` or ``"flame"``: what tracking and avatar files record.
        expression_names: the names of the E per-frame coefficients.
        frame_iterations: the tracker's L-BFGS iterations per window.
        triangles: (F, 3) int64 head triangles (what tracking overlays draw).
        mouth_triangles: (M, 3) int64 mouth cavity behind the lips (avatars only).
        mouth_upper: (M,) bool: the mouth triangle belongs to the upper half.
        mouth_material: (M,) int64 material of each mouth triangle (open_rig's CAVITY, TEETH, TONGUE, GUMS).
        surface_bound: (F + M,) bool avatar triangles whose Gaussians must stay on the surface.
        eye_rims: (F + M,) bool avatar triangles around the eye openings (small Gaussians).
        eyeball_triangles: (F + M,) bool avatar triangles of the eyeballs (their dense layers).
    """

    kind: str
    expression_names: tuple[str, ...]
    frame_iterations: int
    triangles: torch.Tensor
    mouth_triangles: torch.Tensor
    mouth_upper: torch.Tensor
    mouth_material: torch.Tensor
    surface_bound: torch.Tensor
    eye_rims: torch.Tensor
    eyeball_triangles: torch.Tensor

    @property
    def n_expressions(self) -> int:
        """E, the number of per-frame coefficients."""
        ...

    @property
    def identity_shape(self) -> tuple[int, ...]:
        """Shape of the identity parameter (open rig: (478, 3) offsets; FLAME: (S,) shape coefficients)."""
        ...

    @property
    def fit_points(self) -> np.ndarray:
        """Indices of the MediaPipe landmarks the tracker fits."""
        ...

    def expression_prior_weights(self) -> torch.Tensor:
        """(E,) relative weights of the tracker's magnitude prior on each coefficient."""
        ...

    def expression_lower_bounds(self) -> torch.Tensor:
        """(E,) lower bounds of the coefficients the tracker fits (-inf: none)."""
        ...

    def expression_smoothing_weights(self) -> torch.Tensor:
        """(E,) relative weights of the tracker's temporal smoothing of each coefficient."""
        ...

    def point_weights(self) -> torch.Tensor:
        """(478,) weight of each landmark in the fit."""
        ...

    def neutral_landmarks(self) -> torch.Tensor:
        """(478, 3) the MediaPipe landmarks on the neutral template, head space."""
        ...

    def triangle_parts(self) -> torch.Tensor:
        """(F + M,) int64 part of each avatar triangle: 0 face, 1 the rest of the head, 2 mouth interior."""
        ...

    def landmarks(self, identity: torch.Tensor, scale: torch.Tensor, expression: torch.Tensor,
                  rotation: torch.Tensor, translation: torch.Tensor) -> torch.Tensor:
        """(..., 478, 3) posed MediaPipe landmarks (rows outside ``fit_points`` are meaningless)."""
        ...

    def __call__(self, identity: torch.Tensor, scale: torch.Tensor, expression: torch.Tensor,
                 rotation: torch.Tensor, translation: torch.Tensor) -> RigOutput:
        """Pose the rig: identity (..., *identity_shape), scale (...), expression (..., E), rotation (..., 3)
        axis-angle, translation (..., 3) metres -> :class:`RigOutput` with (..., V, 3) vertices."""
        ...

    def to(self, *args, **kwargs) -> HeadRig:
        """The rig on another device or dtype (``torch.nn.Module.to``)."""
        ...
