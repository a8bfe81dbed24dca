"""How a run uses the machine: devices and backends, distributed processes, precision,
compilation and run folders. None of it changes what is computed, only where and how fast.

- :mod:`.backends`: cuDNN/TF32/determinism settings and the device facts a run records.
- :mod:`.distributed`: ``torchrun`` process groups, sharding of inputs, gathering of rows.
- :mod:`.precision`: fp32, bf16 and fp16 autocast, and which CPUs run bf16 fast.
- :mod:`.compile`: ``torch.compile`` and the decision when it pays.
- :mod:`.rundir`: run folders that hold one configuration, claimed before anything is written.
- :mod:`.loggers`: TensorBoard, W&B and CSV loggers of a run's figures (``--log``).

May import: errors, registry, configs, smoothing (its eval-mode helper).
"""
