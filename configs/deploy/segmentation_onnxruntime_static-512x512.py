# A GLNet UPerNet (mmseg) for ONNX Runtime at a fixed 1x3x512x512 input:
# mmdeploy exports mmseg's whole-image inference at a static shape, and the
# test pipeline must give images of that size (docs/deploy.md).
_base_ = ['./_base_/onnx.py']
codebase_config = dict(type='mmseg', task='Segmentation', with_argmax=True)
onnx_config = dict(input_shape=[512, 512])
