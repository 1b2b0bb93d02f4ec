# A GLNet ImageNet classifier (mmpretrain) for ONNX Runtime, dynamic batch
# and image size (docs/deploy.md).
_base_ = ['./_base_/onnx.py']
codebase_config = dict(type='mmpretrain', task='Classification')
onnx_config = dict(
    dynamic_axes=dict(
        input=dict({0: 'batch', 2: 'height', 3: 'width'}),
        output=dict({0: 'batch'})))
