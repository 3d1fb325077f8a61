"""Names and fixed choices of the time-series module (C-MAPSS layout, window, RUL labels)."""
from __future__ import annotations

SETTINGS = [f"setting_{i}" for i in range(1, 4)]
SENSORS = [f"sensor_{i}" for i in range(1, 22)]
# the C-MAPSS text layout: 26 whitespace-separated columns, no header
CMAPSS_COLUMNS = ["unit", "cycle", *SETTINGS, *SENSORS]

WINDOW = 30  # cycles per window (the model input is the window ending at a cycle)
RUL_CAP = 125  # piecewise-linear RUL target: min(true RUL, RUL_CAP) (a training choice)
ANOMALY_RUL = 30  # a window is anomalous when the RUL at its last cycle is <= this
MIN_DISTINCT = 3  # a sensor with fewer distinct training values than this is dropped
# a reading further than this many training standard deviations from the training mean is
# refused (a unit or decimal-point error; beyond it window statistics overflow float32)
MAX_Z = 1e6

# limits on what one file or request may hold (checked before arrays are built)
MAX_ROWS = 200_000
MAX_SENSORS = 200
MAX_MACHINES = 5_000
