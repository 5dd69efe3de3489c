"""Expression-dependent deformation of bound Gaussians: what a person's wrinkles, teeth, lids and lips do
beyond the rig, learned from many frames.

A small shared network maps the rig's expression vector (open rig: its shapes; FLAME: expression
coefficients, jaw and eye rotations) to a ``rank``-d code; each Gaussian holds a basis that turns the code
into an offset of its position (in its parent triangle's frame, triangle units) and of its colour (degree-0
SH). The code is ``net(e) - net(0)``: the neutral expression leaves the avatar as fitted, and the per-Gaussian
bases start at zero, so an untrained field changes nothing. Cost at playback: one tiny MLP and an (N, rank, 6)
contraction per frame.

The field only knows the expressions it was fitted on: each input is clamped to the range the fitting frames
spanned (``low``..``high``, widened to include the neutral 0), so a driver's expression beyond it (a jaw wider
than any training frame's) gets the offsets of the nearest expression the field saw, never an extrapolation of
its network, which nothing constrains outside the frames it was fitted to. Fields saved before the range was
recorded load with an unbounded one.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from headsplat.core.errors import InputError
from headsplat.core.fileio import atomic_path
from headsplat.core.validate import check_shape, read_safetensors
from headsplat.splat.gaussians import GaussianSet

KIND = "expression_basis"
_KEYS = ("w1", "b1", "w2", "b2", "basis")
_RANGE_KEYS = ("low", "high")  # absent from fields saved before the range was recorded


@dataclass
class ExpressionDeformation:
    """Per-Gaussian offsets driven by the rig's expression.

    Attributes:
        w1: (H, E), b1: (H,), w2: (R, H), b2: (R,): the shared network expression -> code (one hidden layer,
            SiLU).
        basis: (N, R, 6) per-Gaussian code -> [local position offset (3, triangle units), DC colour offset (3)].
        low, high: (E,) the range each input is clamped to (default unbounded: -inf, +inf).
    """

    w1: torch.Tensor
    b1: torch.Tensor
    w2: torch.Tensor
    b2: torch.Tensor
    basis: torch.Tensor
    low: torch.Tensor | None = None
    high: torch.Tensor | None = None

    def __post_init__(self) -> None:
        h, e = self.w1.shape
        check_shape("b1", self.b1, (h,))
        r = self.w2.shape[0]
        check_shape("w2", self.w2, (r, h))
        check_shape("b2", self.b2, (r,))
        check_shape("basis", self.basis, (None, r, 6))
        if self.low is None:
            self.low = torch.full((e,), -math.inf, device=self.w1.device)
        if self.high is None:
            self.high = torch.full((e,), math.inf, device=self.w1.device)
        check_shape("low", self.low, (e,))
        check_shape("high", self.high, (e,))
        if bool((self.low > 0).any() | (self.high < 0).any()):
            raise ValueError("the deformation field's input range must include the neutral expression 0")

    @property
    def n_inputs(self) -> int:
        return self.w1.shape[1]

    @property
    def rank(self) -> int:
        return self.w2.shape[0]

    def __len__(self) -> int:
        return self.basis.shape[0]

    def config(self) -> dict:
        return {"kind": KIND, "inputs": self.n_inputs, "hidden": self.w1.shape[0], "rank": self.rank}

    def tensors(self) -> dict[str, torch.Tensor]:
        return {k: getattr(self, k) for k in _KEYS + _RANGE_KEYS}

    def code(self, expression: torch.Tensor) -> torch.Tensor:
        """(..., R) code of expressions (..., E), each input clamped to the field's range."""
        return expression_code(self.w1, self.b1, self.w2, self.b2, expression, self.low, self.high)

    def select(self, index: torch.Tensor) -> "ExpressionDeformation":
        """The field of the Gaussians picked by ``index`` (mask or indices), as
        :func:`~headsplat.splat.gaussians.select`."""
        return replace(self, basis=self.basis[index])

    def to(self, device) -> "ExpressionDeformation":
        return ExpressionDeformation(**{k: v.to(device) for k, v in self.tensors().items()})


def new_deformation(n_gaussians: int, n_inputs: int, rank: int = 16, hidden: int = 64,
                    generator: torch.Generator | None = None, expressions: torch.Tensor | None = None
                    ) -> ExpressionDeformation:
    """A field that changes nothing yet: random network (so the bases receive gradients), zero bases; its input
    range that of ``expressions`` (F, E) and 0 (None: unbounded)."""
    w1 = torch.randn(hidden, n_inputs, generator=generator) * (1.0 / max(n_inputs, 1)) ** 0.5
    w2 = torch.randn(rank, hidden, generator=generator) * (1.0 / hidden) ** 0.5
    low = high = None
    if expressions is not None:
        check_shape("expressions", expressions, (None, n_inputs))
        low, high = expression_range(expressions)
    return ExpressionDeformation(w1, torch.zeros(hidden), w2, torch.zeros(rank), torch.zeros(n_gaussians, rank, 6),
                                 low, high)


def expression_range(expressions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(E,) least and (E,) greatest value of each input over ``expressions`` (F, E) and the neutral 0."""
    e = expressions.detach().float()
    return e.min(0).values.clamp(max=0), e.max(0).values.clamp(min=0)


def expression_code(w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor,
                    expression: torch.Tensor, low: torch.Tensor | None = None, high: torch.Tensor | None = None
                    ) -> torch.Tensor:
    """(..., R) code of expressions (..., E): ``net(clamp(e, low, high)) - net(0)`` (zero at the neutral
    expression; ``low``/``high`` (E,) None: unclamped)."""
    def net(x):
        return F.linear(F.silu(F.linear(x, w1, b1)), w2, b2)

    if low is not None or high is not None:
        expression = torch.clamp(expression, low, high)
    return net(expression) - net(torch.zeros_like(expression))


def deformation_offsets(basis: torch.Tensor, code: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Offsets of N Gaussians for one code (R,): local positions (N, 3), DC colours (N, 3)."""
    out = torch.einsum("nrk,r->nk", basis, code)
    return out[:, :3], out[:, 3:]


def deform(gs: GaussianSet, field: ExpressionDeformation, expression: torch.Tensor) -> GaussianSet:
    """The bound set with the field's offsets for ``expression`` (E,) added to its local positions and colours
    (world fields are left to :func:`~headsplat.splat.binding.pose_gaussians`)."""
    if len(field) != len(gs):
        raise ValueError(f"deformation field has {len(field)} Gaussians, the set {len(gs)}")
    if expression.shape[-1] != field.n_inputs:
        raise ValueError(f"deformation field takes {field.n_inputs} expression inputs, got {expression.shape[-1]}")
    code = field.code(expression.to(field.w1))
    d_pos, d_col = deformation_offsets(field.basis, code)
    sh = gs.sh.clone()
    sh[:, 0] = sh[:, 0] + d_col
    return replace(gs, local_means=gs.local_means + d_pos, sh=sh)


def save_deformation(path: str | os.PathLike, field: ExpressionDeformation) -> None:
    """Write the field's tensors as safetensors (its config in the metadata), atomically."""
    with atomic_path(path) as tmp:
        save_file({k: v.detach().float().contiguous().cpu() for k, v in field.tensors().items()}, str(tmp),
                  metadata={"headsplat": json.dumps(field.config())})


def load_deformation(path: str | os.PathLike, n_gaussians: int, n_inputs: int) -> ExpressionDeformation:
    """Read a field written by :func:`save_deformation`, strictly: exactly its tensors, shapes that agree with
    each other, with the avatar's ``n_gaussians`` and its rig's ``n_inputs``.

    Raises:
        InputError: unreadable, missing or unexpected tensors, or shapes that do not fit the avatar.
    """
    t = read_safetensors(path)
    expected = set(_KEYS) | (set(_RANGE_KEYS) if set(_RANGE_KEYS) & set(t) else set())
    missing, unexpected = sorted(expected - set(t)), sorted(set(t) - expected)
    if missing or unexpected:
        raise InputError(f"{path}: deformation field with missing tensors {missing} / unexpected {unexpected}")
    try:
        field = ExpressionDeformation(**{k: t[k] for k in expected})
    except ValueError as e:
        raise InputError(f"{path}: inconsistent deformation tensors ({e})") from None
    if len(field) != n_gaussians or field.n_inputs != n_inputs:
        raise InputError(f"{path}: deformation field for {len(field)} Gaussians and {field.n_inputs} expression "
                         f"inputs; the avatar has {n_gaussians} Gaussians and {n_inputs} expression coefficients")
    return field
