# mmdeploy's mmdet codebase settings. The detector's own test_cfg (score_thr,
# nms, max_per_img) still decides its results; mmdeploy's post_processing only
# adds the caps of its ONNX NMS, set high enough here that they never cut what
# PyTorch keeps (the same detections as PyTorch: tests/test_deploy.py).
_base_ = ['./onnx.py']
codebase_config = dict(
    type='mmdet',
    task='ObjectDetection',
    model_type='end2end',
    post_processing=dict(
        score_threshold=0.05,
        confidence_threshold=0.005,
        iou_threshold=0.5,
        max_output_boxes_per_class=1000,
        pre_top_k=5000,
        keep_top_k=100,
        background_label_id=-1))
onnx_config = dict(output_names=['dets', 'labels'])
