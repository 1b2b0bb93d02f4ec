"""A test-only mmengine hook (imported by the configs that the distributed,
resume and AMP tests write): it records, per process, what each training
iteration saw and returned, and what validation saw, and writes it to
``<work_dir>/probe_rank<r>.json`` after the run."""
import json
import os.path as osp

from mmengine.dist import get_rank, get_world_size
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


def _paths(data_batch):
    return [s.metainfo.get('img_path') for s in data_batch['data_samples']]


@HOOKS.register_module(force=True)
class ProbeHook(Hook):
    priority = 'VERY_LOW'

    def before_run(self, runner):
        self.record = dict(rank=get_rank(), world_size=get_world_size(),
                           train=[], val_paths=[], metrics=[])

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        self.record['train'].append(dict(
            iter=runner.iter,
            paths=_paths(data_batch),
            losses={k: float(v) for k, v in outputs.items()
                    if k.startswith('loss') or '.loss' in k}))

    def after_val_iter(self, runner, batch_idx, data_batch=None,
                       outputs=None):
        self.record['val_paths'] += _paths(data_batch)

    def after_val_epoch(self, runner, metrics=None):
        self.record['metrics'].append(
            {k: float(v) for k, v in (metrics or {}).items()})

    def after_run(self, runner):
        path = osp.join(runner.work_dir, f'probe_rank{get_rank()}.json')
        with open(path, 'w') as f:
            json.dump(self.record, f)
