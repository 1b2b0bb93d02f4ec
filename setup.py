from setuptools import find_packages, setup

setup(
    name='glnet_mm',
    version='0.1.0',
    description='GLNet (GLMix) vision backbone as an OpenMMLab plugin for '
    'mmdet, mmseg and mmpretrain',
    packages=find_packages(include=['glnet_mm', 'glnet_mm.*']),
    license='Apache-2.0',
    # The model index and the configs, where mim (`mim search glnet_mm`) and
    # glnet_mm.classification.register_models() look: glnet_mm/.mim holds
    # links to model-index.yml and configs/ of the repository.
    package_data={'glnet_mm': ['.mim/model-index.yml', '.mim/configs/**/*.py',
                               '.mim/configs/**/*.yml']},
    python_requires='>=3.9',
    # The model code needs only these; the OpenMMLab stack is pinned in
    # requirements/ and installed by tools/setup_env.sh.
    install_requires=['torch>=2.5', 'mmengine>=0.10'],
)
