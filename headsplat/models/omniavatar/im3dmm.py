"""OmniAvatar's implicit 3DMM (``IGRModel``): an MLP from a point (and the 206 controls) to the point's place in
the canonical space and a prior signed distance to the head, and the SDF-to-density map the renderer uses.

Points are first mapped from the MLP's box (``bbox``) to [-1, 1]³ and embedded as ``[p, sin πp, cos πp]``
(9 values), with the controls appended; points outside the box get a sphere of radius 0.045 as SDF and no warp.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from headsplat.core.errors import ArgumentError

#: the SDF of points outside the MLP's box: a sphere of this radius at the origin (the reference's ``run_approx``)
OUTSIDE_SPHERE_RADIUS = 0.045
EMBEDDING_DIM = 9  # p, sin(pi p), cos(pi p)


def sdf_density(sdf: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """The renderer's density of a signed distance: ``sigmoid(-sdf / beta) / beta`` (``beta``: the learned
    ``renderer.sigmoid_beta``, its sharpness; inside the surface, sdf < 0, the density tends to 1 / beta)."""
    return torch.sigmoid(-sdf / beta) / beta


def _activation(name: str) -> nn.Module:
    if name == "swish":
        return nn.SiLU()
    if name == "softplus":
        return nn.Softplus()
    if name == "relu":
        return nn.ReLU()
    raise ArgumentError("activation", f"unknown value {name!r}; choose swish, softplus or relu")


class IGRModel(nn.Module):
    """The MLP ``fc0 ... fc{L-1}`` (``torch.nn.Linear``; the reference's keys), SiLU between layers, the embedded
    input concatenated again before each of ``skip_connection_layers`` (then divided by √2).

    With a ``template_sdf`` (the template head's own IGR network, a shared submodule: its keys appear under both
    ``renderer.template_sdf.*`` and ``renderer.im3dmm._template_sdf.*``) the MLP's last three outputs are
    canonical coordinates in the box's units and are mapped back to world units.
    """

    def __init__(self, intermediate_dims: list[int], skip_connection_layers: list[int], bbox, feature_dim: int = 0,
                 output_dim: int = 1, template_sdf: "IGRModel | None" = None, activation: str = "swish"):
        super().__init__()
        box = torch.as_tensor(bbox, dtype=torch.float32)
        if box.shape[0] != 2:
            raise ArgumentError("bbox", f"expected (min, max), got a tensor of shape {tuple(box.shape)}")
        # plain attributes, as in the reference (not in the state dict)
        self._bbox_center = 0.5 * (box[0] + box[1])
        self._edge = 0.5 * (box[1] - box[0])
        self._inv_edge_scaling = 2.0 / (box[1] - box[0])
        self._template_sdf = template_sdf
        self._activation = _activation(activation)
        self._skip_connection_layers = tuple(skip_connection_layers)
        self._feature_dim, self._output_dim = feature_dim, output_dim
        dims = [EMBEDDING_DIM + feature_dim, *intermediate_dims, output_dim]
        self._num_layers = len(dims)
        for i in range(len(dims) - 1):
            extra = EMBEDDING_DIM + feature_dim if i in self._skip_connection_layers else 0
            setattr(self, f"fc{i}", nn.Linear(dims[i] + extra, dims[i + 1]))

    def _mlp(self, unit_points: torch.Tensor, features: torch.Tensor | None) -> torch.Tensor:
        """(K, 3) points in [-1, 1]³, (K, feature_dim) -> (K, output_dim)."""
        embed = torch.cat([unit_points, torch.sin(math.pi * unit_points), torch.cos(math.pi * unit_points)], -1)
        if features is not None:
            embed = torch.cat([embed, features], -1)
        x = embed
        for i in range(self._num_layers - 1):
            if i in self._skip_connection_layers:
                x = torch.cat([x, embed], -1) / math.sqrt(2.0)
            x = getattr(self, f"fc{i}")(x)
            if i < self._num_layers - 2:
                x = self._activation(x)
        if self._template_sdf is not None:
            x = torch.cat([x[..., :-3], x[..., -3:] * self._edge.to(x) + self._bbox_center.to(x)], -1)
        return x

    def _outside(self, points: torch.Tensor) -> torch.Tensor:
        if self._output_dim == 3:
            return points
        dist = torch.norm(points, dim=-1, keepdim=True) - OUTSIDE_SPHERE_RADIUS
        return dist if self._output_dim == 1 else torch.cat([dist, points], -1)

    def forward(self, points: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        """The MLP's outputs (the reference's ``return_warping_only`` path).

        Args:
            points: (..., 3) world points. features: (..., feature_dim) the controls per point, or None.

        Returns:
            (..., output_dim): for the 3DMM (output 4) the prior SDF, then the canonical x, y, z.
        """
        unit = (points - self._bbox_center.to(points)) * self._inv_edge_scaling.to(points)
        inside = ((unit <= 1) & (unit >= -1)).all(-1)
        out = self._outside(points).clone()
        out[inside] = self._mlp(unit[inside], None if features is None else features[inside]).to(out.dtype)
        return out

    def distance(self, points: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        """(..., 3) -> (..., 1) the SDF: the template's at the warped point if there is a template, else the
        MLP's first output (the reference's ``return_distance_only``; not on the rendering path)."""
        x = self.forward(points, features)
        if self._template_sdf is not None:
            return self._template_sdf(x[..., -3:])
        return x[..., :1]
