# The toy UPerNet (configs/segmentation/upernet_glnet-toy_*): its test
# pipeline's 128x160 (height x width) images. mmdeploy's input_shape is
# [width, height].
_base_ = ['./segmentation_onnxruntime_static-512x512.py']
onnx_config = dict(input_shape=[160, 128])
