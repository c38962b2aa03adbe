"""Int8 networks for the chip: the workload format, its data layout and its host reference.

A workload is a directory ``configs/workloads/<name>/`` (docs/WORKLOADS.md): a
``workload.yaml`` naming the layers and their ``.npy`` files, and a held-out test set.
``format`` loads and checks it, ``layout`` maps each layer to one GEMM, ``reference``
runs it with the chip's arithmetic, ``float_model`` runs the float network it came from,
and ``train`` makes the ``digits`` workload.
"""
