"""The MLflow model every trial logs: its trained Keras net behind `mlflow.pyfunc`.

This file is logged as MLflow "models from code": MLflow copies it into the model and runs
it when the model loads, so it imports nothing from `benchmark`. A model then loads (and
`mlflow models serve` serves it) wherever Keras and MLflow are installed, without this
project on the path.

Input: uint8 images (N, size, size, 3), RGB, already centre-cropped and resized to the
trial's image size (`benchmark predict` does that for image files). Output: one row per
image, one column per class name, the class probabilities (rows sum to 1).
"""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import set_model
from mlflow.pyfunc import PythonModel

KERAS_ARTIFACT = "keras_model"  # the artifacts key of the saved .keras file
BATCH = 256  # the trial's evaluation batch (trial.EVAL_BATCH): same batches, same numbers


class CnnClassifier(PythonModel):
    """Class probabilities from uint8 images, by the trial's own Keras model."""

    def load_context(self, context) -> None:
        import keras  # here, not at the top: MLflow imports this file to log it, too

        self.model = keras.saving.load_model(context.artifacts[KERAS_ARTIFACT], compile=False)
        self.class_names = list(context.model_config["class_names"])
        self.image_size = int(context.model_config["image_size"])

    # np.ndarray: a hint MLflow takes without inferring a schema from it (the logged
    # signature validates the input); with no hint at all it warns on every load.
    def predict(self, context, model_input: np.ndarray, params=None) -> pd.DataFrame:
        x = np.asarray(model_input)
        if x.ndim == 3:  # one image
            x = x[None]
        want = (self.image_size, self.image_size, 3)
        if x.ndim != 4 or x.shape[1:] != want:
            raise mlflow.exceptions.MlflowException.invalid_parameter_value(
                f"expected uint8 images of shape (N, {want[0]}, {want[1]}, 3), got {x.shape}"
            )
        probs = self.model.predict(x.astype(np.float32), batch_size=BATCH, verbose=0)
        return pd.DataFrame(np.asarray(probs, dtype=np.float64), columns=self.class_names)


set_model(CnnClassifier())
