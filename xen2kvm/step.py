"""The shape every step has: its actions as data (actions.py), the dry-run text rendered from
them, and apply() performing exactly them through the backends."""

from __future__ import annotations

from typing import Any

from .actions import Action


class Step:
    def actions(self) -> tuple[Action, ...]:
        """What apply() sends, runs, writes or compares, in order."""
        raise NotImplementedError

    def render(self) -> str:
        return "\n".join(a.render() for a in self.actions())

    def data(self) -> dict:
        """The step as machine-readable data (`--format json`)."""
        try:
            actions = [a.data() for a in self.actions()]
        except NotImplementedError:  # a step that renders its own text (steering.py)
            return {"step": type(self).__name__, "text": self.render()}
        return {"step": type(self).__name__, "actions": actions}

    def apply(self, ctx: Any) -> None:
        raise NotImplementedError
