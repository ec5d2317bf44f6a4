"""Processes as Linux's /proc shows them, for the tests that check that nothing outlives a command."""

from pathlib import Path
from typing import NamedTuple


class Process(NamedTuple):
    pid: int
    state: str
    parent: int
    session: int


def processes() -> list[Process]:
    """Every process still running (zombies left out), with its parent and session."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                found.append(Process(int(entry.name), fields[0], int(fields[1]), int(fields[3])))
    return found
