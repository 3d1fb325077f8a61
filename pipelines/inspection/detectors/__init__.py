"""Image anomaly detectors: fixed-feature radial Gaussians and a convolutional autoencoder."""
