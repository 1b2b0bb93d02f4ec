"""A test-only mmengine hook (imported by the configs that the distributed
and resume tests write): it records, per process, what each training
iteration saw and returned, and what validation saw, and writes it to
``<work_dir>/probe_rank<r>.json`` after the run.

``pause_at='iter_4.pth'``: once that checkpoint exists (after the iteration
or epoch that saved it), write the record to ``probe_rank<r>_paused.json``
and a ``paused_rank<r>`` marker holding the process id, then wait to be
killed (the resume test sends SIGKILL from outside)."""
import json
import os
import os.path as osp
import time

from mmengine.dist import get_rank, get_world_size
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


def _paths(data_batch):
    return [s.metainfo.get('img_path') for s in data_batch['data_samples']]


@HOOKS.register_module(force=True)
class ProbeHook(Hook):
    priority = 'VERY_LOW'  # after the CheckpointHook

    def __init__(self, pause_at=None):
        self.pause_at = pause_at

    def _maybe_pause(self, runner, saved):
        # `saved`: the checkpoint that this iteration/epoch's CheckpointHook
        # (which runs before this hook) wrote on rank 0; by name, so that
        # every rank pauses at the same point
        if self.pause_at == saved:
            if get_rank() == 0:  # the only rank that writes it
                assert osp.exists(osp.join(runner.work_dir, saved))
            self._dump(runner, '_paused')
            # torchrun starts each worker in a session of its own: the test
            # kills every worker by its pid
            with open(osp.join(runner.work_dir,
                               f'paused_rank{get_rank()}'), 'w') as f:
                f.write(str(os.getpid()))
            time.sleep(600)  # killed here

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
        self._maybe_pause(runner, f'iter_{runner.iter + 1}.pth')

    def after_train_epoch(self, runner):
        self._maybe_pause(runner, f'epoch_{runner.epoch + 1}.pth')

    def after_val_iter(self, runner, batch_idx, data_batch=None,
                       outputs=None):
        self.record['val_paths'] += _paths(data_batch)

    def after_val_epoch(self, runner, metrics=None):
        self.record['metrics'].append(
            {k: float(v) for k, v in (metrics or {}).items()})

    def after_run(self, runner):
        self._dump(runner)

    def _dump(self, runner, suffix=''):
        path = osp.join(runner.work_dir,
                        f'probe_rank{get_rank()}{suffix}.json')
        with open(path, 'w') as f:
            json.dump(self.record, f)
