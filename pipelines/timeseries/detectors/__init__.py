"""Time-series detectors: every one takes standardised windows, (windows, cycles, sensors)."""
