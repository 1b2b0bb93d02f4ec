# mmdeploy's ONNX export settings for GLNet models (its own config format:
# onnx_config / codebase_config / backend_config). The installed mmdeploy
# wheel ships no configs, so these are written out here in full; everything
# else is mmdeploy's defaults. What GLNet needs: opset 14, the first with
# torch's symbolic for F.scaled_dot_product_attention (GLNet's attention),
# which mmdeploy's usual opset 11 lacks.
onnx_config = dict(
    type='onnx',
    export_params=True,
    keep_initializers_as_inputs=False,
    opset_version=14,
    save_file='end2end.onnx',
    input_names=['input'],
    output_names=['output'],
    input_shape=None,
    optimize=True)
backend_config = dict(type='onnxruntime')
