"""Experiments on real data (no downloads): the authors' setting reproduced on data shipped with
scikit-learn.  :mod:`proofs.experiments.digits` is the binary 0-vs-1 handwritten-digits run.
"""

__all__ = []
