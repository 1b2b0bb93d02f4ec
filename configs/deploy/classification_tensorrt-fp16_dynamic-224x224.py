# A GLNet ImageNet classifier as a TensorRT fp16 engine: 224x224 images,
# batch 1..64.
_base_ = ['./classification_onnxruntime_dynamic.py', './_base_/tensorrt.py']
backend_config = dict(
    type='tensorrt',
    common_config={{_base_.tensorrt_fp16}},
    model_inputs=[
        dict(input_shapes=dict(input=dict(
            min_shape=[1, 3, 224, 224],
            opt_shape=[8, 3, 224, 224],
            max_shape=[64, 3, 224, 224])))
    ])
