"""Names shared by the drift statistics and their backends (no logic, so backends never import the engine)."""

from __future__ import annotations

import numpy as np

NUMERIC, CATEGORICAL = "numeric", "categorical"
DRIFT, NO_DRIFT, INSUFFICIENT = "drift", "no_drift", "insufficient_data"

# feature -> (kind, reference values, current values), the non-missing, finite values a backend tests
Samples = dict[str, tuple[str, np.ndarray, np.ndarray]]
