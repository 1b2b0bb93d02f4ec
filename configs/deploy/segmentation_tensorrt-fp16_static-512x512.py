# A GLNet UPerNet as a TensorRT fp16 engine at a fixed 1x3x512x512 input.
_base_ = ['./segmentation_onnxruntime_static-512x512.py',
          './_base_/tensorrt.py']
backend_config = dict(
    type='tensorrt',
    common_config={{_base_.tensorrt_fp16}},
    model_inputs=[
        dict(input_shapes=dict(input=dict(
            min_shape=[1, 3, 512, 512],
            opt_shape=[1, 3, 512, 512],
            max_shape=[1, 3, 512, 512])))
    ])
