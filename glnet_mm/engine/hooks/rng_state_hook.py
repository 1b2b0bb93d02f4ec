"""``RNGStateHook``: exact resume for mmengine runs (``--resume``).

mmengine checkpoints the model, the optimizer, the schedulers and the
message hub, and re-seeds every process when a run resumes, but it does not
save the random number generators' states. A resumed run therefore draws
other random numbers than the uninterrupted run would have: other dropout
masks, other anchor/RoI samples (mmdet's samplers draw from torch), and,
in epoch-based runs, other augmentations (numpy/python ``random``). This
hook stores every process's states in each checkpoint and restores them on
resume, and keeps validation from moving them, so a killed and resumed run
repeats the uninterrupted one (tests/test_resume.py).

* saved: torch's CPU generator (and CUDA's, where present), numpy's global
  generator and Python's ``random``, of every rank (gathered from all ranks
  just before the CheckpointHook saves, since only rank 0 writes the file);
* restored on resume when the number of processes is unchanged (otherwise
  a warning, and the run continues re-seeded as before);
* iteration-based loops: mmengine's ``IterBasedTrainLoop`` replays the
  data pipeline of the iterations already done from the re-seeded state,
  which reproduces the numpy/Python streams the transforms use, so only
  torch's generators are restored there (restoring numpy too would advance
  it twice);
* validation (``before_val`` .. ``after_val``) runs on saved-and-restored
  generators, so validating or not before a checkpoint changes nothing in
  training.
"""
import random

import numpy as np
import torch
from mmengine.dist import all_gather_object, get_rank, get_world_size
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.registry import HOOKS
from mmengine.runner import IterBasedTrainLoop


def get_rng_states() -> dict:
    """This process's generator states as plain data."""
    np_state = np.random.get_state()
    states = dict(
        python=random.getstate(),
        numpy=(np_state[0], np_state[1].tolist()) + tuple(np_state[2:]),
        torch=torch.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states['cuda'] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict, numpy_and_python: bool = True):
    torch.set_rng_state(states['torch'])
    if 'cuda' in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states['cuda'])
    if numpy_and_python:
        random.setstate(states['python'])
        name, key, *rest = states['numpy']
        np.random.set_state((name, np.asarray(key, dtype=np.uint32), *rest))


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Save and restore the random generators' states for exact resume.

    See the module docstring. Add ``dict(type='RNGStateHook')`` to
    ``custom_hooks`` and ``'glnet_mm.engine.hooks'`` to ``custom_imports``.
    """
    priority = 'VERY_HIGH'  # before the CheckpointHook (VERY_LOW)

    def __init__(self):
        self._gathered = None

    def _checkpoint_hook(self, runner):
        for hook in runner.hooks:
            if type(hook).__name__ == 'CheckpointHook':
                return hook
        return None

    def _gather(self, runner, due):
        """Gather every rank's states when a checkpoint is due. Rank 0
        alone saves (``Runner.save_checkpoint`` is master-only), so the
        collective runs here, on every rank, in the train-iteration /
        train-epoch hook that precedes the CheckpointHook's."""
        if get_world_size() > 1 and due:
            self._gathered = all_gather_object(get_rng_states())

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        ckpt = self._checkpoint_hook(runner)
        if ckpt is not None and not ckpt.by_epoch:
            self._gather(runner, self.every_n_train_iters(
                runner, ckpt.interval) or (ckpt.save_last and
                                           self.is_last_train_iter(runner)))

    def after_train_epoch(self, runner) -> None:
        ckpt = self._checkpoint_hook(runner)
        if ckpt is not None and ckpt.by_epoch:
            self._gather(runner, self.every_n_epochs(
                runner, ckpt.interval) or (ckpt.save_last and
                                           self.is_last_train_epoch(runner)))

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if get_world_size() == 1:
            checkpoint['rng_states'] = [get_rng_states()]
        elif self._gathered is not None:
            checkpoint['rng_states'] = self._gathered
            self._gathered = None

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        states = checkpoint.get('rng_states')
        # resume only: `load_from` of a finished run starts a new run
        if states is None or not getattr(runner, '_resume', False):
            return
        if len(states) != get_world_size():
            print_log(
                f'RNGStateHook: the checkpoint holds the generator states of '
                f'{len(states)} processes, this run has {get_world_size()}; '
                'continuing with freshly seeded generators',
                logger='current', level=30)
            return
        iter_based = isinstance(getattr(runner, '_train_loop', None),
                                IterBasedTrainLoop)
        set_rng_states(states[get_rank()], numpy_and_python=not iter_based)

    def before_val(self, runner) -> None:
        self._saved = get_rng_states()

    def after_val(self, runner) -> None:
        saved = getattr(self, '_saved', None)
        if saved is not None:
            set_rng_states(saved)
            self._saved = None
