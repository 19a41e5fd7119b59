"""Numbers that give a validation MSE its meaning: the reference's grade, and baselines."""

from __future__ import annotations

import math

# The reference's "Model Quality" thresholds on validation MSE.
QUALITY_GRADES = ((0.05, "Excellent"), (0.10, "Good"), (0.20, "Fair"))


def quality_grade(mse: float) -> str:
    for limit, grade in QUALITY_GRADES:
        if mse < limit:
            return grade
    return "Poor"


def gradient_health(grad_norm: float) -> str:
    """The reference's reading of a gradient norm (healthy 0.01-1.0)."""
    if not math.isfinite(grad_norm):
        return "non-finite"
    if grad_norm > 10:
        return "exploding"
    if grad_norm < 0.001:
        return "vanishing"
    if 0.01 <= grad_norm <= 1.0:
        return "healthy"
    return "high" if grad_norm > 1.0 else "low"


def reduction_percent(initial: float, final: float) -> float:
    return 100.0 * (initial - final) / initial if initial > 0 else 0.0
