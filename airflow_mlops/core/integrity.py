"""Model artifact integrity: a sha256 over a model directory and the flavour/serialization format it declares.

Loading a model runs code: skops with trusted types, cloudpickle if its ``MLmodel`` says so, or the pyfunc's
code file. So a model is loaded only after its directory hashes to the digest recorded when it was logged, and
its ``MLmodel`` declares the flavour and format recorded then, and that format is one the config allows. An edited
byte anywhere (weights, ``MLmodel``, the code file) changes the digest; a format switch is named on its own.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from airflow_mlops.core.errors import ModelIntegrityError

SAFE_FORMATS = frozenset({"skops"})
PICKLE_FORMATS = frozenset({"pickle", "cloudpickle"})
_CHUNK = 1 << 20


def directory_sha256(path: str | Path) -> str:
    """sha256 over every file under ``path``: relative POSIX path, size and content digest, in path order.

    Independent of where the directory lives and of file timestamps; an added, removed, renamed or edited
    file changes it.
    """
    root = Path(path)
    if not root.is_dir():
        raise ModelIntegrityError(f"{root} is not a model directory")
    entries = []
    for directory, subdirs, files in os.walk(root):
        subdirs.sort()
        for name in files:
            full = Path(directory, name)
            entries.append((full.relative_to(root).as_posix(), full))
    digest = hashlib.sha256()
    for relative, full in sorted(entries):
        content = hashlib.sha256()
        with open(full, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                content.update(chunk)
        digest.update(f"{relative}\0{full.stat().st_size}\0{content.hexdigest()}\n".encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class ModelDescription:
    """What a model directory's ``MLmodel`` says about how it loads."""

    flavor: str   # "python_function" (code model) or "sklearn"
    format: str   # "skops" | "cloudpickle" | "pickle" | "unknown"
    loader: str   # the python_function loader module


def describe_model_dir(path: str | Path) -> ModelDescription:
    """Read ``MLmodel`` (YAML, parsed safely) and say which flavour and serialization format it loads with."""
    import yaml

    mlmodel = Path(path) / "MLmodel"
    try:
        spec = yaml.safe_load(mlmodel.read_text()) or {}
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as error:
        raise ModelIntegrityError(f"cannot read {mlmodel.name} of the model: {error}") from error
    flavors = spec.get("flavors") or {}
    pyfunc = flavors.get("python_function") or {}
    loader = str(pyfunc.get("loader_module") or "")
    if "sklearn" in flavors:
        fmt = str((flavors["sklearn"] or {}).get("serialization_format") or "cloudpickle")
        return ModelDescription("sklearn", fmt, loader)
    if pyfunc:
        if pyfunc.get("python_model"):  # a pickled PythonModel instance
            return ModelDescription("python_function", "cloudpickle", loader)
        artifacts = pyfunc.get("artifacts") or {}
        pipeline = str((artifacts.get("pipeline") or {}).get("path") or "")
        fmt = {".skops": "skops", ".pkl": "cloudpickle"}.get(Path(pipeline).suffix, "unknown")
        return ModelDescription("python_function", fmt, loader)
    return ModelDescription("unknown", "unknown", loader)


def allowed_formats(allow_pickle: bool) -> frozenset[str]:
    return SAFE_FORMATS | PICKLE_FORMATS if allow_pickle else SAFE_FORMATS


def verify_model_dir(path: str | Path, *, expected_sha256: str | None, expected_flavor: str | None,
                     expected_format: str | None, allow_pickle: bool = False, what: str = "the model") -> str:
    """Refuse (``ModelIntegrityError``) a model directory that is not byte for byte what was recorded, or whose
    format is not allowed. Returns the digest. Call before anything deserializes the model."""
    if not expected_sha256 or not expected_format or not expected_flavor:
        raise ModelIntegrityError(
            f"{what} has no recorded sha256/flavour/format (it was not logged by airflow-mlops, or logged before "
            "integrity tags existed): refusing to load it")
    description = describe_model_dir(path)
    if description.format != expected_format or description.flavor != expected_flavor:
        raise ModelIntegrityError(
            f"{what}: MLmodel declares flavour {description.flavor!r} with format {description.format!r}, but "
            f"{expected_flavor!r} with {expected_format!r} was recorded when it was logged: refusing to load it")
    allowed = allowed_formats(allow_pickle)
    if description.format not in allowed:
        raise ModelIntegrityError(
            f"{what} is serialized with {description.format!r}, a pickle-based format that runs code when loaded; "
            "set training.allow_pickle: true in the model config to accept it")
    actual = directory_sha256(path)
    if actual != expected_sha256:
        raise ModelIntegrityError(
            f"{what}: the artifact's sha256 is {actual[:16]}..., but {expected_sha256[:16]}... was recorded when "
            "it was logged: the files were changed; refusing to load it")
    return actual
