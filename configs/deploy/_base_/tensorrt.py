# mmdeploy's TensorRT settings for GLNet models, given by each TensorRT deploy
# config as backend_config = dict(type='tensorrt', common_config=
# {{_base_.tensorrt_fp16}}, model_inputs=...): fp16, 1 GiB of builder
# workspace. Engines are built on the GPU they run on (docs/deploy.md).
tensorrt_fp16 = dict(fp16_mode=True, max_workspace_size=1 << 30)
# The inputs of the detection and instance-segmentation engines: image sides
# 320..1344, tuned for 800x1344 (mmdet's 1333x800 resize, padded).
detection_inputs = [
    dict(input_shapes=dict(input=dict(
        min_shape=[1, 3, 320, 320],
        opt_shape=[1, 3, 800, 1344],
        max_shape=[1, 3, 1344, 1344])))
]
