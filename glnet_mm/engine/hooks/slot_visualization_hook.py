"""``SlotVisualizationHook``: GLMix's semantic slots of fixed validation
images, drawn after every validation into the run's visualizer.

Only mmengine is imported here (``custom_imports`` of the configs); the
pictures' code (:mod:`glnet_mm.visualization.slots`, OpenCV) is imported
when the hook is used.
"""
import time

import numpy as np
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS
from mmengine.runner import EpochBasedTrainLoop


@HOOKS.register_module()
class SlotVisualizationHook(Hook):
    """Draw the clustering weights (semantic slots) of chosen GLMix blocks
    for a fixed set of validation images after every validation.

    One line in a config turns it on::

        custom_hooks = [dict(type='RNGStateHook'),
                        dict(type='SlotVisualizationHook', blocks=[2, 5])]

    After each ``interval``-th validation, on rank 0 only, the model's GLNet
    backbone (``model.backbone``: detectors, segmentors and classifiers
    alike) runs once more on ``num_images`` validation images, evenly spaced
    over the validation set and the same every time, prepared by the
    validation pipeline and the model's data preprocessor. Each image gives
    the figure of ``tools/visualization/visualize_slots.py`` (:func:`glnet_mm.visualization.slots.
    slot_figure`: one row per block, the image, every slot's weight map,
    the ``num_medoids`` representative slots overlaid), which goes to the
    runner's ``Visualizer`` as ``slots_<dataset index>`` with the epoch
    (epoch-based training) or the iteration as its step, so it lands in
    whatever backend the run uses (local PNGs under ``vis_data/vis_image``,
    TensorBoard, W&B). The model is left as it was (forward hooks are
    removed, the mode restored, no gradient).

    Off, it costs nothing (it is not in the run); on, one backbone forward
    per image and the drawing, after each validation (measured in
    docs/detection.md).

    Args:
        blocks (Sequence[int], optional): GLMix block numbers, 1-based over
            the whole network as in the paper. Defaults to those of the
            paper's 2, 5, 10 that have slots, or every block with slots when
            fewer than two of them do (small models).
        num_images (int): Validation images drawn. Defaults to 2.
        num_medoids (int): Representative slots per block. Defaults to 4.
        interval (int): Draw after every ``interval``-th validation.
            Defaults to 1.
        max_side (int): Figures are drawn at the validation size, scaled
            down so that an image's longer side is at most this. Defaults
            to 320.
    """
    priority = 'LOW'

    def __init__(self, blocks=None, num_images=2, num_medoids=4, interval=1,
                 max_side=320):
        for name, value in (('num_images', num_images),
                            ('num_medoids', num_medoids),
                            ('interval', interval), ('max_side', max_side)):
            if type(value) is not int or value < 1:
                raise ValueError(f'SlotVisualizationHook: {name} must be an '
                                 f'int >= 1, got {value!r}')
        if blocks is not None:
            blocks = list(blocks)
            if not blocks or not all(
                    type(b) is int and b >= 1 for b in blocks):
                raise ValueError('SlotVisualizationHook: blocks must be '
                                 f'block numbers >= 1, got {blocks!r}')
        self.blocks = blocks
        self.num_images = num_images
        self.num_medoids = num_medoids
        self.interval = interval
        self.max_side = max_side
        self._validations = 0
        self._inputs = None  # [(dataset index, picture, network input)]

    @staticmethod
    def _model(runner):
        model = runner.model
        return model.module if is_model_wrapper(model) else model

    def before_run(self, runner) -> None:
        """Check the model and the blocks before anything trains."""
        from glnet_mm import GLNet
        from glnet_mm.visualization.slots import default_blocks, slot_blocks
        backbone = getattr(self._model(runner), 'backbone', None)
        if not isinstance(backbone, GLNet):
            raise TypeError(
                'SlotVisualizationHook needs a model whose `backbone` is a '
                f'GLNet, got {type(backbone).__name__}')
        found, total = slot_blocks(backbone)
        if self.blocks is None:
            self.blocks = default_blocks(backbone)
        missing = [b for b in self.blocks if b not in found]
        if not self.blocks or missing:
            raise ValueError(
                f'SlotVisualizationHook: blocks {missing or self.blocks} '
                f'have no slot clustering; this GLNet has {total} blocks and '
                f'clustering in blocks {sorted(found)}')

    def _prepare(self, runner, model):
        """The fixed images: dataset index, RGB picture, network input."""
        dataset = runner.val_loop.dataloader.dataset
        count = min(self.num_images, len(dataset))
        indices = sorted({round(i) for i in np.linspace(
            0, len(dataset) - 1, count)})
        prep = model.data_preprocessor
        bgr = bool(getattr(prep, '_channel_conversion', False)
                   or getattr(prep, 'to_rgb', False))
        inputs = []
        for index in indices:
            item = dataset[index]
            data = prep(dict(inputs=[item['inputs']],
                             data_samples=[item['data_samples']]), False)
            x = data['inputs']
            picture = item['inputs'].permute(1, 2, 0).numpy().clip(
                0, 255).astype(np.uint8)  # some pipelines load float32
            if bgr:  # loaded as BGR, the network sees RGB
                picture = picture[..., ::-1]
            h, w = picture.shape[:2]  # pad as the preprocessor did
            picture = np.pad(picture, ((0, x.shape[-2] - h),
                                       (0, x.shape[-1] - w), (0, 0)))
            inputs.append((index, np.ascontiguousarray(picture), x))
        return inputs

    def after_val_epoch(self, runner, metrics=None) -> None:
        self._validations += 1
        if self._validations % self.interval or not is_main_process():
            return
        import cv2
        from glnet_mm.visualization.slots import capture_assignments, slot_figure
        start = time.perf_counter()
        model = self._model(runner)
        backbone = model.backbone
        if self._inputs is None:
            self._inputs = self._prepare(runner, model)
        epoch_based = isinstance(getattr(runner, '_train_loop', None),
                                 EpochBasedTrainLoop)
        step = runner.epoch if epoch_based else runner.iter
        training = backbone.training
        backbone.eval()
        try:
            for index, picture, x in self._inputs:
                maps = capture_assignments(backbone, x, self.blocks)
                scale = self.max_side / max(picture.shape[:2])
                if scale < 1:
                    picture = cv2.resize(
                        picture, (round(picture.shape[1] * scale),
                                  round(picture.shape[0] * scale)),
                        interpolation=cv2.INTER_AREA)
                maps = {b: m.cpu() for b, m in maps.items()}
                figure, _ = slot_figure(picture, maps, self.num_medoids)
                runner.visualizer.add_image(f'slots_{index}', figure,
                                            step=step)
        finally:
            backbone.train(training)
        print_log(
            f'SlotVisualizationHook: blocks {self.blocks} of '
            f'{len(self._inputs)} validation images drawn in '
            f'{time.perf_counter() - start:.2f} s', logger='current')
