"""Detection and classification backends, the model registry, crops.

Knows nothing of the database: functions take images/arrays and return plain
records (:class:`~irbis.vision.boxes.Detection`). Heavy modules (ONNX Runtime,
OpenCV) are imported on use so ``import irbis.vision`` stays cheap.
"""
