from __future__ import annotations

from dataclasses import dataclass

from core.models import AuditLog


@dataclass(frozen=True, slots=True)
class Actor:
    """Who performs a write: passed to every service so the audit log can name them."""

    type: str
    id: str = ""
    label: str = ""

    @classmethod
    def system(cls, label: str = "system") -> Actor:
        return cls(type=AuditLog.ActorType.SYSTEM, label=label)

    @classmethod
    def user(cls, user: object) -> Actor:
        return cls(
            type=AuditLog.ActorType.USER,
            id=str(getattr(user, "pk", "")),
            label=str(getattr(user, "get_username", lambda: "")()),
        )


SYSTEM = Actor.system()
