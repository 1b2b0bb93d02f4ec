# mmdeploy's TensorRT settings for GLNet models, given by each TensorRT deploy
# config as backend_config = dict(type='tensorrt', common_config=
# {{_base_.tensorrt_fp16}}, model_inputs=...): fp16, 1 GiB of builder
# workspace. Engines are built on the GPU they run on (docs/deploy.md).
tensorrt_fp16 = dict(fp16_mode=True, max_workspace_size=1 << 30)
