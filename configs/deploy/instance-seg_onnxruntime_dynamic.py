# A GLNet Mask R-CNN for ONNX Runtime, dynamic batch and image size, with
# mmdeploy's RoIAlign and NMS ops (its ONNX Runtime ops library, in its
# wheel); masks leave the graph as the mask head's 28x28 maps and mmdeploy
# pastes them into the image (docs/deploy.md).
_base_ = ['./_base_/mmdet.py']
codebase_config = dict(post_processing=dict(export_postprocess_mask=False))
onnx_config = dict(
    output_names=['dets', 'labels', 'masks'],
    dynamic_axes=dict(
        input=dict({0: 'batch', 2: 'height', 3: 'width'}),
        dets=dict({0: 'batch', 1: 'num_dets'}),
        labels=dict({0: 'batch', 1: 'num_dets'}),
        masks=dict({0: 'batch', 1: 'num_dets', 2: 'height', 3: 'width'})))
