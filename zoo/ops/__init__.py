"""Pure tensor operations shared by task families (box formats, IoU, non-maximum suppression,
anchor boxes). ``zoo.ops`` imports nothing of the zoo."""
from zoo.ops.anchors import anchor_iou, kmeans_anchors, mean_best_iou
from zoo.ops.boxes import (
    batched_nms,
    box_area,
    box_iou,
    box_iou_aligned,
    clip_boxes,
    cxcywh_to_xyxy,
    decode_localization,
    encode_localization,
    nms,
    xywh_to_xyxy,
    xyxy_to_cxcywh,
    xyxy_to_xywh,
)

__all__ = [
    "xyxy_to_cxcywh", "cxcywh_to_xyxy", "xyxy_to_xywh", "xywh_to_xyxy",
    "box_area", "box_iou", "box_iou_aligned", "nms", "batched_nms", "clip_boxes",
    "encode_localization", "decode_localization",
    "anchor_iou", "kmeans_anchors", "mean_best_iou",
]
