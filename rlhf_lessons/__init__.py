"""rlhf_lessons: the helper package of the RLHF notebooks, in four layers.

Open a folder to see a layer; each imports only the layers above it in this list
(``tests/test_layout.py`` checks it)::

    core/     configs and presets, data, models, the lean GPT-2 and the sampler
    train/    the maths of each trainer, in the notebooks' order (02-04, 07-09)
    measure/  what several notebooks measure: intervals, features, probes,
              selection, calibration, simulated raters (03-07)
    course/   what a learner sees: artefacts (the one module that knows
              ``outputs/`` and ``data/models/``), checks, plots, widgets,
              the notebook runner, handouts and slides

The pipeline, in the order the notebooks teach it::

    data (01) -> policy: pretrain + SFT (02) -> judge (03) -> PPO (04)
              -> what raters and judges pay for (05)
              -> what optimisation does with it (06)
              -> beyond PPO: best-of-N, RLOO/GRPO, DPO (07)
              -> the lesson in a model that can write (08)
              -> the same pipeline in TRL, on many GPUs (09)

Each module's docstring says what it holds and which notebook teaches it.
"""
