"""On PYTHONPATH, makes TensorFlow absent, as on a machine without it: `import tensorflow`
fails and `importlib.util.find_spec("tensorflow")` finds nothing (the JAX and PyTorch
tests run the command so)."""

import sys
from importlib.machinery import PathFinder


class _PathFinderWithoutTensorFlow(PathFinder):
    @classmethod
    def find_spec(cls, fullname, path=None, target=None):
        if fullname == "tensorflow" or fullname.startswith("tensorflow."):
            return None
        return super().find_spec(fullname, path, target)


sys.meta_path[:] = [_PathFinderWithoutTensorFlow if f is PathFinder else f for f in sys.meta_path]
