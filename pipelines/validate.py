"""``python -m pipelines.validate DIR [--prediction]``: the sensor batch-file validator.

Kept at this path so the documented command keeps working; the code is in the sensor module.
"""
from pipelines.sensor.validate import main

if __name__ == "__main__":
    raise SystemExit(main())
