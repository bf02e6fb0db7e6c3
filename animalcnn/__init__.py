"""animalcnn: reproducible CNN image-classification experiments from YAML configs."""

import os

# TensorFlow's C++ logs drown the progress output; its real errors surface as exceptions.
# ANIMALCNN_VERBOSE=1 (or --verbose) keeps them.
if os.environ.get("ANIMALCNN_VERBOSE", "") in ("", "0"):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

__version__ = "0.1.0"
