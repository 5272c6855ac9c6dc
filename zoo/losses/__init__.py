"""Losses that torch does not ship, one family per module (YOLO, triplet and contrastive, style
and content, ...). Classification uses torch's own cross-entropy; each task family that needs a
loss of its own adds its module here, imported by its task, never by a model."""
