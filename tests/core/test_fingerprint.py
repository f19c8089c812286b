import subprocess
import sys

import numpy as np
import pandas as pd

from airflow_mlops.core.fingerprint import dataframe_fingerprint

FRAME_CODE = """
import pandas as pd, numpy as np
frame = pd.DataFrame({"id": ["a", "b", None], "x": [1.5, np.nan, -0.0],
                      "t": pd.to_datetime(["2025-01-01", "2025-01-02", "2025-01-03"]), "n": [1, 2, 3]})
"""


def make_frame():
    namespace = {}
    exec(FRAME_CODE, namespace)
    return namespace["frame"]


def test_same_data_same_fingerprint_in_another_process():
    here = dataframe_fingerprint(make_frame())
    code = FRAME_CODE + "from airflow_mlops.core.fingerprint import dataframe_fingerprint\n" \
                        "print(dataframe_fingerprint(frame))"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert here == other and len(here) == 64


def test_fingerprint_changes_with_values_order_and_names():
    base = make_frame()
    fp = dataframe_fingerprint(base)
    changed = base.copy()
    changed.loc[0, "x"] = 1.6
    assert dataframe_fingerprint(changed) != fp
    assert dataframe_fingerprint(base[list(reversed(base.columns))]) != fp
    assert dataframe_fingerprint(base.rename(columns={"x": "y"})) != fp
    assert dataframe_fingerprint(base.iloc[::-1]) != fp


def test_fingerprint_ignores_representation_details():
    base = make_frame()
    as_float = base.assign(n=base["n"].astype("float64"))
    assert dataframe_fingerprint(as_float) == dataframe_fingerprint(base)  # numbers compare as float64
    other_nan = base.copy()
    other_nan.loc[1, "x"] = np.float64("nan") * -1
    assert dataframe_fingerprint(other_nan) == dataframe_fingerprint(base)
    text_boundary = pd.DataFrame({"s": ["ab", "c"]})
    assert dataframe_fingerprint(text_boundary) != dataframe_fingerprint(pd.DataFrame({"s": ["a", "bc"]}))
