import functools
import gc
import http.server
import importlib.util
import json
import os
import os.path as osp
import sys
import threading

import pytest
import torch

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
REFERENCE = os.environ.get('GLNET_MM_REFERENCE',
                           osp.join(REPO, '..', 'shared', 'reference'))
RELEASED = ('stl', 'stl_paramslot', '4g', '9g', '16g')
GOLDEN = ('stl', 'stl_paramslot', '4g', '16g')


def reference_path(name):
    """Path of a reference file; skip (or fail under CI=true) if absent."""
    path = osp.join(REFERENCE, name)
    if not osp.exists(path):
        message = (f'reference data {path} is missing (set GLNET_MM_REFERENCE '
                   'to the folder of the official reference data)')
        if os.environ.get('CI') == 'true':
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope='session')
def official_keys():
    with open(reference_path('official_keys.json')) as f:
        return json.load(f)


@pytest.fixture(scope='session')
def official_flops():
    with open(reference_path('official_flops.json')) as f:
        return json.load(f)


def load_golden(variant):
    return torch.load(reference_path(f'golden_{variant}.pt'),
                      weights_only=True)


def load_tool(name):
    """The module of ``tools/<name>.py``, ``<name>`` with its subfolder
    (``'deployment/export_onnx'``); tools/ is not a package."""
    spec = importlib.util.spec_from_file_location(
        osp.basename(name), osp.join(REPO, 'tools', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def arch_from_official(config):
    """The GLNet ``arch`` of the official constructor switches recorded in
    the reference data (``depth``, ``embed_dim``, ``mixing_modes``, ...)."""
    config = dict(config)
    norm = config.pop('norm_layer', 'BatchNorm2d')
    assert norm == 'BatchNorm2d', f'unsupported official norm_layer {norm!r}'
    renames = dict(depth='depths', embed_dim='channels')
    return {renames.get(k, k): v for k, v in config.items()}


# ---- tests that need what this environment lacks --------------------------
# glnet_mm needs only torch and mmengine; the toolboxes and the tests' extras
# are optional. A test (or test file) that needs one says so with needs()
# below: `pytest tests` runs in a user's environment that has only some
# toolboxes, and in the newest stack (noxfile.py), which has
# mmcv-lite and mmpretrain only. Any other ModuleNotFoundError is a failure.


def _skips_allowed():
    """False under CI on the development stack (CI=true, no GLNET_MM_STACK),
    where everything is installed: nothing that runs there may become a
    skip. (A stack's checks fail on any skip: noxfile.py.)"""
    return not (os.environ.get('CI') == 'true'
                and not os.environ.get('GLNET_MM_STACK'))


def needs(module):
    """The optional ``module`` (a toolbox, ``mmcv._ext`` for mmcv's compiled
    ops, a test extra), imported: ``pytest.importorskip`` for the test, or
    at a file's top for the whole file, where it is not installed; under CI
    on the development stack its absence fails instead."""
    if _skips_allowed():
        return pytest.importorskip(
            module, reason=f'needs {module}, not installed')
    return importlib.import_module(module)


def _resolve_packages_once():
    """mmengine resolves each ``pkg::`` base of a config by checking that
    the package is installed (reloading ``pkg_resources``: 13 ms) and by
    parsing every metafile of that package (0.3 s a base on a 2-core
    machine); the tests load the shipped configs hundreds of times, so
    within a test process each is done once a package or file. Nothing is
    installed while a test process runs, and the parsed metafiles are only
    read: the same results."""
    from mmengine.config import config, utils
    utils.load = functools.lru_cache(maxsize=None)(utils.load)
    config.is_installed = functools.lru_cache(maxsize=None)(
        config.is_installed)


def _collect_garbage_less_often():
    """A test process holds half a million objects once it has imported
    torch, the toolboxes and the test files, and makes millions more
    (models, configs, traces). CPython's default thresholds collect every
    700 net allocations and the whole heap every 100 such collections: 45
    CPU-s of the two workers of a ``make test`` (gc.callbacks). Collections
    14 times rarer free the same garbage a little later: on six of the
    heaviest in-process test files, 9.9 CPU-s of collection became 4.0,
    peak memory 3.28 GB became 3.30 GB."""
    gc.set_threshold(10000, 10, 10)


def pytest_configure(config):
    """Under pytest-xdist (``make test`` runs one worker a core) the cores
    are shared out: each worker, and each process it starts, gets its part
    of them for intra-op threads, so that the workers do not oversubscribe
    the machine (OpenMP threads that spin on a busy core)."""
    _resolve_packages_once()
    _collect_garbage_less_often()
    workers = os.environ.get('PYTEST_XDIST_WORKER_COUNT')
    if workers:
        threads = str(max(1, (os.cpu_count() or 1) // int(workers)))
        os.environ['OMP_NUM_THREADS'] = os.environ['MKL_NUM_THREADS'] = threads
        torch.set_num_threads(int(threads))


# The test files that take longest (20 s to 90 s of one core each on a
# 2-core machine; test_custom_dataset.py, which runs docs/custom_dataset.md,
# 4 to 4.5 minutes on a loaded one), longest first. They are collected first, so that
# pytest-xdist, which hands each worker a whole file at a time in
# collection order (``--dist loadfile --no-loadscope-reorder``), starts them
# at once and the workers end together instead of one finishing a long file
# alone.
LONGEST_FILES = ('test_custom_dataset.py', 'test_resume.py',
                 'test_distributed.py', 'test_query_heads_toy.py',
                 'test_export_onnx.py', 'test_compile.py',
                 'test_segmentation_toy.py', 'test_detection_configs.py',
                 'test_classification.py', 'test_ddp_variants.py',
                 'test_benchmark.py', 'test_timm.py')


# The node ids of every test this run collected, before -m/-k selection
# (test_environment.py: each check a stack selects exists).
COLLECTED = set()


def pytest_itemcollected(item):
    COLLECTED.add(item.nodeid)


def pytest_collection_finish(session):
    """What exists now (the imports, the collected tests) lives as long as
    the process: out of the collector's scans (gc.freeze), which then cover
    what the tests make. mmengine's datasets each run a full collection:
    0.3 s in the heap of a process that imported every test file, 0.0 s
    once it is frozen; with the thresholds above, the toy trainings' files
    spent 3.6 CPU-s collecting instead of 6.1 (12.2 with neither)."""
    gc.collect()
    gc.freeze()


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _fresh_visualizers():
    """mmengine keeps one visualizer per name in a process, and the
    toolboxes' configs all name theirs 'visualizer': a Runner built after
    another one in the same process would write to the first one's log
    folder. Each test starts without them, whatever ran before it in its
    (xdist worker) process."""
    yield
    if 'mmengine.visualization' in sys.modules:
        from mmengine.visualization import Visualizer
        todo = [Visualizer]
        while todo:
            cls = todo.pop()
            cls._instance_dict.clear()
            todo.extend(cls.__subclasses__())


class _QuietHandler(http.server.SimpleHTTPRequestHandler):

    def log_message(self, *args):
        pass


@pytest.fixture
def http_root(tmp_path, monkeypatch):
    """A folder served over HTTP on 127.0.0.1 (a thread of this process),
    and a fresh download cache."""
    root = tmp_path / 'www'
    root.mkdir()
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f'http://127.0.0.1:{server.server_port}'
    finally:
        server.shutdown()
        server.server_close()
