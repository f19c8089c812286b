"""Where the bundled DAG templates live: inside the wheel (package data) or at the repository root."""

from __future__ import annotations

from pathlib import Path


def bundled_dags_dir() -> Path:
    """The bundled ``dags/`` folder: inside the wheel, or at the repository root in a source checkout."""
    packaged = Path(__file__).parent / "bundled_dags"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parent.parent / "dags"
