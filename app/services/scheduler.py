"""One tick: everything due at an instant, found from the database."""

from dataclasses import asdict, dataclass
from datetime import datetime


@dataclass
class TickSummary:
    occurrences: int = 0
    followups: int = 0
    messages: int = 0
    withdrawn: int = 0
    missed: int = 0
    sent: int = 0

    def line(self, at: datetime) -> str:
        parts = ", ".join(f"{k} {v}" for k, v in asdict(self).items())
        return f"tick at {at.isoformat()}: {parts}"


def tick(now: datetime) -> TickSummary:
    """Run every piece of due work at `now`; running it twice for one instant changes nothing."""
    summary = TickSummary()
    try:
        from app.services import engine
    except ImportError:
        return summary
    result = engine.run_due(now=now)
    for key, value in result.items():
        if hasattr(summary, key):
            setattr(summary, key, value)
    return summary
