"""Joint architecture and hyperparameter search (JAHS) of a CNN on Fashion-MNIST with BOHB.

Importing the package is cheap: torch is only imported by the modules that train.
"""

__version__ = "0.1.0"
