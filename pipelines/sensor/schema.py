"""The sensor layout every loader maps to: a wafer id, 590 sensors, an optional label."""
from __future__ import annotations

N_SENSORS = 590
SENSOR_COLUMNS: list[str] = [f"Sensor-{i}" for i in range(1, N_SENSORS + 1)]
# label column names in the two real layouts (SECOM: Pass/Fail, batch files: Good/Bad)
LABEL_COLUMNS = ("Pass/Fail", "Good/Bad")
# headers accepted for the first (wafer id) column, lower-cased
ID_HEADERS = ("", "unnamed: 0", "wafer", "time", "id")


def sensor_label(column: str, index: int) -> str:
    """A sensor as a file names it, with the model's name beside it where the two differ:
    ``Sensor-5`` in a batch file, ``4 (Sensor-5)`` in a SECOM file."""
    column, model = column.strip(), SENSOR_COLUMNS[index]
    return model if column == model else f"{column} ({model})"
