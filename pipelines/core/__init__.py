"""The shared core: what every module uses, knowing nothing of sensors, maps, windows or images."""
