"""The record that holds everything that differs between model families.

One `ModelProfile` per family (one module each in this package). The runtime reads the
budget fields; post-processing reads the coordinate convention and answer parser; task
adapters read the prompt wording. Nothing about a family lives anywhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vistool.errors import BudgetError


@dataclass(frozen=True)
class ModelProfile:
    """What one model family needs, in one place.

    Runtime fields:
      name: registry key (e.g. "gemma4").
      budgets: the image-token budgets the family accepts (empty: no budget knob).
      default_budget: budget used for images when a request gives none.
      video_budget: budget per video frame.
      budget_kwarg: the image-processor keyword that carries the budget.
    """

    name: str
    budgets: tuple[int, ...] = ()
    default_budget: int | None = None
    video_budget: int | None = None
    budget_kwarg: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def check_budget(self, budget: int | None) -> int | None:
        """Return the budget to use (the default for None); raise BudgetError if unsupported."""
        if budget is None:
            return self.default_budget
        if not self.budgets:
            raise BudgetError(f"model family {self.name!r} has no image-token budget setting (got {budget})")
        if budget not in self.budgets:
            allowed = ", ".join(str(b) for b in self.budgets)
            raise BudgetError(f"image-token budget {budget} is not supported by {self.name}; use one of {allowed}")
        return budget

    def processor_kwargs(self, budget: int | None) -> dict[str, Any]:
        """Return the image-processor keyword arguments that apply `budget`."""
        budget = self.check_budget(budget)
        if budget is None or self.budget_kwarg is None:
            return {}
        return {self.budget_kwarg: budget}
