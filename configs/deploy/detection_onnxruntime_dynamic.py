# A GLNet detector (RetinaNet, Faster R-CNN) for ONNX Runtime, dynamic batch
# and image size (docs/deploy.md).
_base_ = ['./_base_/mmdet.py']
onnx_config = dict(
    dynamic_axes=dict(
        input=dict({0: 'batch', 2: 'height', 3: 'width'}),
        dets=dict({0: 'batch', 1: 'num_dets'}),
        labels=dict({0: 'batch', 1: 'num_dets'})))
