"""cnn-benchmark: an MLflow-tracked benchmark suite for convolutional image classifiers."""

import os

# TensorFlow's C++ start-up chatter (CUDA probing, CPU feature notes) hides our own output;
# errors still show. Set before anything imports tensorflow; a user's own setting wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
