"""cnn-benchmark: an MLflow-tracked benchmark suite for convolutional image classifiers."""

__version__ = "0.1.0"
