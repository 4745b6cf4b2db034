"""Topic names and configs, defined once.

The names are the contract's; ``BORDERFLOW_TOPIC_PREFIX`` (empty by default)
lets several deployments, or tests, share one cluster.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

STATE_TABLE: Final = "state"
TYPE_TOPICS: Final = {"crossing": "crossings", "departure": "departures", "statement": "statements"}
#: message types that travel on another type's topic: a checkpoint's registration goes with the crossings at it
CARRIED_WITH: Final = {"checkpoint": "crossing"}


def internal_topics(app_id: str) -> tuple[str, ...]:
    """The topics Faust makes for an app: the state table's changelog and the assignor's leader topic."""
    return (f"{app_id}-{STATE_TABLE}-changelog", f"{app_id}-__assignor-__leader")


@dataclass(frozen=True, slots=True)
class Topics:
    prefix: str = ""

    def for_type(self, message_type: str) -> str:
        return self.prefix + TYPE_TOPICS[CARRIED_WITH.get(message_type, message_type)]

    @property
    def inputs(self) -> tuple[str, ...]:
        return tuple(self.prefix + name for name in TYPE_TOPICS.values())

    @property
    def statements(self) -> str:
        return self.for_type("statement")

    @property
    def dead_letters(self) -> str:
        return self.prefix + "borderflow-dlq"

    @property
    def window_results(self) -> str:
        return self.prefix + "window-results"

    @property
    def outputs(self) -> tuple[str, ...]:
        return (self.dead_letters, self.window_results)

    def type_of(self, topic: str) -> str:
        for event_type, name in TYPE_TOPICS.items():
            if self.prefix + name == topic:
                return event_type
        raise KeyError(topic)

    def configs(self, topic: str) -> dict[str, str]:
        # window results are upserts by key: compaction keeps the latest value
        return {"cleanup.policy": "compact"} if topic == self.window_results else {}
