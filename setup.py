from setuptools import find_packages, setup

setup(
    name='glnet_mm',
    version='0.1.0',
    description='GLNet (GLMix) vision backbone as an OpenMMLab plugin for '
    'mmdet, mmseg and mmpretrain',
    packages=find_packages(include=['glnet_mm', 'glnet_mm.*']),
    license='Apache-2.0',
    python_requires='>=3.9',
    # The model code needs only these; the OpenMMLab stack is pinned in
    # requirements/ and installed by tools/setup_env.sh.
    install_requires=['torch>=2.5', 'mmengine>=0.10'],
)
