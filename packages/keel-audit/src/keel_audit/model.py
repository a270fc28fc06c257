"""The values every part of keel-audit shares: severities, locations and findings.

These types are the interface between the engine and the rules: a rule yields `Finding`s,
the engine filters, suppresses, baselines and reports them. They are frozen so a finding
can be hashed, sorted and compared byte for byte (the output must be deterministic).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Severity(enum.IntEnum):
    """Ordered, so `finding.severity >= Severity.WARNING` reads as it should."""

    INFO = 1
    WARNING = 2
    ERROR = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Severity:
        """`"warning"` → `Severity.WARNING`; raises `ValueError` naming the choices."""
        try:
            return cls[text.strip().upper()]
        except KeyError:
            choices = ", ".join(member.label for member in cls)
            raise ValueError(f"unknown severity {text!r} (choose one of: {choices})") from None


@dataclass(frozen=True, order=True)
class Location:
    path: str  # posix, relative to the audited root
    line: int  # 1-based
    col: int = 0  # 0-based, as `ast` counts

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col + 1}"


@dataclass(frozen=True)
class Step:
    """One hop of an evidence chain, e.g. `helpers.fetch_profile` at helpers.py:12."""

    location: Location
    label: str


@dataclass(frozen=True)
class Finding:
    code: str
    severity: Severity
    location: Location
    message: str
    chain: tuple[Step, ...] = ()

    def sort_key(self) -> tuple[str, int, int, str, str]:
        return (self.location.path, self.location.line, self.location.col, self.code, self.message)
