"""Hand-written architectures for offline zoo weights that no installed library builds.

- :mod:`zoo.nets.cifar_resnet` — He et al. 2016 CIFAR ResNets (akamaster checkpoints);
- :mod:`zoo.nets.mini_xception` — Keras 2.0 face models (mini/big Xception) rebuilt in torch from
  the HDF5 file's own layer graph.
"""
