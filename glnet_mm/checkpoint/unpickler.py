"""The safe-loading rule, and the restricted unpickler that enforces it.

This module is the one place that decides what a checkpoint may contain. It
is used the same way on every supported torch (2.1 to the newest): torch
2.1's ``weights_only=True`` has no allow-list (no ``add_safe_globals``), so it
cannot read the official GLNet files, which pickle their training arguments
as an omegaconf ``DictConfig``, and torch's allow-list API has changed
between releases since. Rather than two mechanisms, checkpoints are always
read by ``torch.load(..., weights_only=False, pickle_module=<this module's
restricted pickle>)``: torch still restores the tensors (its own
``persistent_load``), while every global the pickle names is looked up in an
allow-list and never imported:

* torch's own list of what rebuilds tensors, parameters, sizes and dtypes
  (the one its ``weights_only=True`` uses);
* :func:`allowed_globals`: plain data that checkpoints carry (builtins,
  numpy arrays and scalars, ``argparse.Namespace``, mmengine's
  ``HistoryBuffer`` ...), and the omegaconf classes of the official release,
  rebuilt as inert :class:`OpaqueObject` stand-ins (omegaconf need not be
  installed; its code never runs);
* what the user allowed: :func:`add_safe_globals` (every torch) and, where
  torch has it, ``torch.serialization.add_safe_globals``.

Any other global is refused by name (:class:`RefusedGlobal`) before anything
is called. Beyond ``find_class`` the unpickler also refuses the two other
ways a pickle can reach objects or mutate them: extension codes of
``copyreg`` (their cache bypasses ``find_class``) and ``BUILD`` (state
setting) on anything but an instance of an allowed class. TorchScript
archives, which ``torch.load`` would hand to ``torch.jit.load``, are refused
too.
"""
import _compat_pickle
import argparse
import codecs
import collections
import functools
import os
import pickle
import typing
import zipfile

import torch

# Classes of the official release's training configuration, restored as
# inert stand-ins (omegaconf 2.x, what a hydra config pickles into).
OPAQUE_CLASSES = (
    'omegaconf.dictconfig.DictConfig', 'omegaconf.listconfig.ListConfig',
    'omegaconf.base.ContainerMetadata', 'omegaconf.base.Metadata',
    'omegaconf.nodes.AnyNode', 'omegaconf.nodes.StringNode',
    'omegaconf.nodes.IntegerNode', 'omegaconf.nodes.FloatNode',
    'omegaconf.nodes.BooleanNode', 'omegaconf.nodes.EnumNode',
    'omegaconf.nodes.BytesNode', 'omegaconf.nodes.PathNode')


class RefusedGlobal(pickle.UnpicklingError):
    """A checkpoint names a global that is not on the allow-list.

    Attributes:
        name (str): The refused global, ``module.qualname``.
    """

    def __init__(self, name):
        super().__init__(f'refused global {name}: not on the safe-load '
                         'allow-list (nothing was executed)')
        self.name = name


class OpaqueObject:
    """Inert stand-in for a pickled object whose class is not imported.

    Attributes:
        pickled_name (str): The class name recorded in the checkpoint.
        args (tuple): Positional arguments the pickle constructed it with.
        state: The state the pickle restored into it (plain data).
    """
    pickled_name = ''

    def __new__(cls, *args, **kwargs):
        obj = super().__new__(cls)
        obj.args, obj.state = args, None
        return obj

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        self.state = state

    def __repr__(self):
        return f'<opaque {self.pickled_name}>'


def _restricted_getattr(allowed):
    """A ``getattr`` for unpickling: mmengine's ``HistoryBuffer`` pickles its
    statistics methods as ``getattr(HistoryBuffer, 'mean')``. Only public
    attributes of the ``allowed`` classes resolve; anything else is refused."""

    def getattr_(obj, name):
        if not (isinstance(obj, type) and obj in allowed
                and isinstance(name, str) and not name.startswith('_')):
            raise pickle.UnpicklingError(
                f'refused getattr({obj!r}, {name!r}) in a checkpoint')
        return getattr(obj, name)

    return getattr_


@functools.lru_cache(maxsize=None)
def allowed_globals():
    """glnet_mm's part of the allow-list, as ``(object, pickled name)``
    pairs: data-only classes that checkpoints carry, and the stand-ins of
    :data:`OPAQUE_CLASSES`."""
    import numpy as np
    from mmengine.logging import HistoryBuffer
    try:  # numpy 2 moved numpy.core to numpy._core; pickles use both
        from numpy._core import multiarray
    except ImportError:  # numpy 1
        from numpy.core import multiarray
    allowed = [(t, f'builtins.{t.__name__}')
               for t in (dict, list, set, frozenset, tuple, int, float, complex,
                         str, bytes, bytearray, bool, slice)]
    allowed += [
        (argparse.Namespace, 'argparse.Namespace'),
        (codecs.encode, '_codecs.encode'),
        (collections.defaultdict, 'collections.defaultdict'),
        (collections.OrderedDict, 'collections.OrderedDict'),
        (typing.Any, 'typing.Any'),
        (np.dtype, 'numpy.dtype'), (np.ndarray, 'numpy.ndarray'),
        (HistoryBuffer, 'mmengine.logging.history_buffer.HistoryBuffer'),
        (_restricted_getattr({HistoryBuffer}), 'builtins.getattr')]
    for core in ('numpy.core', 'numpy._core'):
        allowed += [(multiarray.scalar, f'{core}.multiarray.scalar'),
                    (multiarray._reconstruct,
                     f'{core}.multiarray._reconstruct')]
    # numpy 2 pickles dtypes as instances of per-type classes (Float64DType)
    allowed += [(obj, f'{obj.__module__}.{obj.__qualname__}')
                for name, obj in vars(getattr(np, 'dtypes', object)).items()
                if name.endswith('DType') and isinstance(obj, type)]
    for name in OPAQUE_CLASSES:
        stand_in = type(name.rsplit('.', 1)[-1], (OpaqueObject, ),
                        dict(pickled_name=name, __module__=__name__))
        allowed.append((stand_in, name))
    return tuple(allowed)


# What the user allowed through add_safe_globals(), on every torch.
_user_globals = []


def _named(entries):
    """``{pickled name: object}`` for objects or ``(object, name)`` pairs."""
    named = {}
    for entry in entries:
        if isinstance(entry, tuple):
            obj, name = entry
        else:
            obj, name = entry, f'{entry.__module__}.{entry.__qualname__}'
        named[name] = obj
    return named


def add_safe_globals(objects):
    """Allow more globals in checkpoints, on every torch (what
    ``torch.serialization.add_safe_globals`` does on torch >= 2.4, which is
    honoured too). Only for classes and functions you trust with data from
    the files you load.

    Args:
        objects (list): Classes or functions, or ``(object, 'module.name')``
            pairs for objects pickled under another name.
    """
    _user_globals.extend(objects)


def _torch_allowed():
    """torch's own list of what rebuilds tensors (its ``weights_only``
    unpickler's; the same private function from torch 1.13 to today)."""
    from torch import _weights_only_unpickler
    return dict(_weights_only_unpickler._get_allowed_globals())


def allowed_by_name():
    """The whole allow-list now: ``{pickled name: object}``."""
    allowed = _torch_allowed()
    allowed.update(_named(allowed_globals()))
    torch_user = getattr(torch.serialization, 'get_safe_globals', None)
    if torch_user is not None:
        allowed.update(_named(torch_user()))
    allowed.update(_named(_user_globals))
    return allowed


def _checkable_class(obj):
    """Whether ``obj`` is a class that ``isinstance`` accepts (``typing.Any``
    is a class on Python >= 3.11, but refuses isinstance checks)."""
    if not isinstance(obj, type):
        return False
    try:
        isinstance(None, obj)
    except TypeError:
        return False
    return True


class RestrictedUnpickler(pickle._Unpickler):
    """``pickle``'s unpickler with every global looked up in
    :func:`allowed_by_name` instead of imported (see the module docstring).

    The pure-Python unpickler is used because its opcode table can be
    restricted too; checkpoints keep their tensors out of the pickle
    (``persistent_load``), so it is as fast as the C one here.
    """
    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file, **kwargs):
        super().__init__(file, **kwargs)
        self._allowed = allowed_by_name()
        self._buildable = tuple(
            {obj for obj in self._allowed.values() if _checkable_class(obj)})

    def find_class(self, module, name):
        # Python 2 names, as pickle maps them (torch saves protocol 2)
        if self.proto < 3 and self.fix_imports:
            if (module, name) in _compat_pickle.NAME_MAPPING:
                module, name = _compat_pickle.NAME_MAPPING[(module, name)]
            elif module in _compat_pickle.IMPORT_MAPPING:
                module = _compat_pickle.IMPORT_MAPPING[module]
        full_name = f'{module}.{name}'
        try:
            return self._allowed[full_name]
        except KeyError:
            raise RefusedGlobal(full_name) from None

    def load_build(self):
        inst = self.stack[-2]  # BUILD: [..., inst, state]
        if not isinstance(inst, self._buildable):
            raise pickle.UnpicklingError(
                f'refused: a checkpoint sets the state of a '
                f'{type(inst).__module__}.{type(inst).__qualname__}, which '
                'is not an allowed class')
        super().load_build()

    dispatch[pickle.BUILD[0]] = load_build

    def load_extension(self):
        raise pickle.UnpicklingError(
            'refused: the checkpoint uses copyreg extension codes')

    for _code in (pickle.EXT1, pickle.EXT2, pickle.EXT4):
        dispatch[_code[0]] = load_extension
    del _code


class _RestrictedPickle:
    """What ``torch.load(pickle_module=...)`` uses of a pickle module."""
    __name__ = 'glnet_mm.checkpoint.unpickler'
    Unpickler = RestrictedUnpickler
    UnpicklingError = pickle.UnpicklingError

    @staticmethod
    def load(file, **kwargs):
        return RestrictedUnpickler(file, **kwargs).load()


restricted_pickle = _RestrictedPickle()


def is_torchscript_archive(f):
    """Whether ``f`` (a path or a seekable binary file) is a TorchScript
    archive, which ``torch.load`` would pass to ``torch.jit.load``."""
    if not isinstance(f, (str, os.PathLike)):
        position = f.tell()
    try:
        with zipfile.ZipFile(f) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return False
    finally:
        if not isinstance(f, (str, os.PathLike)):
            f.seek(position)
    return any(n.split('/', 1)[-1] == 'constants.pkl' for n in names)


FORCE_VARIABLE = 'TORCH_FORCE_WEIGHTS_ONLY_LOAD'

#: ``torch.load`` as torch defines it (before :func:`install` replaces it).
torch_load = torch.load


def restricted_load(f, map_location=None, pickle_module=None, *,
                    weights_only=None, mmap=None, **pickle_load_args):
    """``torch.load`` through the restricted unpickler, whatever the caller
    asked for (``weights_only=False`` as ``torch.hub`` passes, or another
    ``pickle_module``): the replacement of ``torch.load`` while safe loading
    is on. Same arguments and result as ``torch.load``.
    """
    if os.environ.get(FORCE_VARIABLE, '0').lower() in ('1', 'y', 'yes',
                                                       'true'):
        raise RuntimeError(
            f'{FORCE_VARIABLE} is set, which makes torch refuse the '
            "restricted unpickler of glnet_mm's safe loading (it is as "
            f'strict, and reads the official GLNet files): unset {FORCE_VARIABLE}')
    if is_torchscript_archive(f):
        raise pickle.UnpicklingError(
            'refused: a TorchScript archive holds code (torch.load would run '
            'torch.jit.load); load it with torch.jit.load if you trust it')
    if mmap is not None:
        pickle_load_args['mmap'] = mmap
    return torch_load(f, map_location=map_location,
                      pickle_module=restricted_pickle, weights_only=False,
                      **pickle_load_args)
