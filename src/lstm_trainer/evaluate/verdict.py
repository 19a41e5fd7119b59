"""How a model on a series other than the reference's compares with the baselines.

The reference's grade (metrics.quality_grade) reads absolute MSE thresholds that only mean
something on its sine wave; on any other series the honest statement is relative.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Verdict:
    split: str  # the split it was judged on: test where there is one, else validation
    skill_vs_persistence: float  # 1 - model MASE / baseline MASE: > 0 beats it
    skill_vs_linear: float
    # What was compared: the mean over series of each series' MASE where the run scores series
    # one by one (the competitions' way), else the MASE of all windows pooled.
    measure: str = "MASE"

    @property
    def loses_to(self) -> list[str]:
        named = (("persistence", self.skill_vs_persistence), ("the linear AR", self.skill_vs_linear))
        return [name for name, skill in named if skill < 0]

    @property
    def grade(self) -> str:
        return "loses to a baseline" if self.loses_to else "beats the baselines"

    @property
    def text(self) -> str:
        return (
            f"{self.grade} on {self.split}: skill {self.skill_vs_persistence:+.1%} against persistence, "
            f"{self.skill_vs_linear:+.1%} against the linear AR ({self.measure}; > 0 is better than the baseline)"
        )

    @property
    def warning(self) -> str | None:
        """One line for the end of the run where the model is worse than a baseline; None otherwise."""
        if not self.loses_to:
            return None
        return (
            f"warning: the model loses to {' and '.join(self.loses_to)} on {self.split} ({self.text.split(': ', 1)[1]}); "
            "use that baseline's forecast, or try more epochs, another --seq_length or --linear_skip"
        )


def relative_verdict(
    split: str, model_mase: float, persistence_mase: float, linear_mase: float, measure: str = "MASE"
) -> Verdict:
    def skill(baseline: float) -> float:
        return 1.0 - model_mase / baseline if baseline > 0 else 0.0

    return Verdict(split, skill(persistence_mase), skill(linear_mase), measure)
