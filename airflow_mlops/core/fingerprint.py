"""Content fingerprints of data sets, for lineage and reproducibility.

The fingerprint is a sha256 over a canonical serialisation: column names in the frame's order, a dtype
family per column, then the values (numbers as little-endian float64 with one NaN pattern, datetimes as
UTC nanoseconds, everything else as length-prefixed UTF-8). It depends on the values and their order, not on
the pandas version's internal hashing, so the same data gives the same fingerprint across processes.
"""

from __future__ import annotations

import hashlib


def _column_bytes(series) -> tuple[str, bytes]:
    import numpy as np
    import pandas as pd

    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
        values = pd.to_numeric(series, errors="coerce").to_numpy(dtype="<f8", na_value=np.nan)
        values = np.where(np.isnan(values), np.nan, values)  # one NaN bit pattern
        values = values + 0.0  # -0.0 -> 0.0
        return "num", values.tobytes()
    if pd.api.types.is_datetime64_any_dtype(series):
        stamps = series.dt.tz_convert("UTC") if getattr(series.dt, "tz", None) else series
        nanos = stamps.astype("datetime64[ns]").to_numpy().view("<i8")
        return "time", nanos.tobytes()
    encoded = ["\x00" if v is None or (isinstance(v, float) and v != v) else str(v) for v in series.tolist()]
    body = "".join(f"{len(text)}:{text}" for text in encoded)
    return "text", body.encode("utf-8")


def dataframe_fingerprint(frame) -> str:
    digest = hashlib.sha256()
    digest.update(f"rows={len(frame)};cols={len(frame.columns)};".encode())
    for name in frame.columns:
        family, payload = _column_bytes(frame[name])
        digest.update(f"{len(str(name))}:{name}:{family}:".encode())
        digest.update(payload)
    return digest.hexdigest()


def schema_of(frame) -> dict[str, str]:
    return {str(name): str(dtype) for name, dtype in frame.dtypes.items()}
