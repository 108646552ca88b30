"""Offline training side of edge-asc (installed as ``edge_asc.train``).

Dataset readers, the feature cache, the paper's models, mixup training, evaluation
and late fusion. Needs the ``[train]`` extra (TensorFlow); the device runtime never
imports this package.
"""
