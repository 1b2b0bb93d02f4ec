# A GLNet detector (RetinaNet, Faster R-CNN) as a TensorRT fp16 engine,
# image sizes 320..1344 per side.
_base_ = ['./detection_onnxruntime_dynamic.py', './_base_/tensorrt.py']
backend_config = dict(
    type='tensorrt',
    common_config={{_base_.tensorrt_fp16}},
    model_inputs={{_base_.detection_inputs}})
