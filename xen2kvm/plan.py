"""What a planner returns: the steps to run, what to tell the operator, and what failed."""

from __future__ import annotations

from dataclasses import dataclass, field

from .step import Step


@dataclass
class Plan:
    steps: list[Step] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def add(self, *steps: Step) -> None:
        self.steps.extend(steps)

    def data(self) -> dict:
        """The plan as machine-readable data (`--format json`)."""
        return {"steps": [st.data() for st in self.steps], "notes": list(self.notes),
                "failures": list(self.failures)}
