"""mnistnet: a neural network written from scratch in NumPy that learns handwritten digits.

The core imports numpy, Pillow and the standard library only (never streamlit or plotly).
"""

from .data import MNIST, DataError, Split, load_mnist
from .drawing import preprocess_drawing
from .modelfile import FORMAT_VERSION, load_model, save_model
from .network import MLP
from .presets import PRESETS, preset
from .train import History, Progress, TrainConfig, TrainingDiverged, train

__all__ = ["MLP", "TrainConfig", "History", "Progress", "PRESETS", "preset", "train",
           "TrainingDiverged", "load_mnist", "MNIST", "Split", "DataError", "save_model",
           "load_model", "FORMAT_VERSION", "preprocess_drawing"]
__version__ = "0.1.0"
