"""Conversion side of edge-asc (installed as ``edge_asc.export``).

Turns a training run into a quantized TFLite model bundle and measures what quantization
costs. Needs the ``[train]`` extra (TensorFlow); the device only reads the bundles.
"""
