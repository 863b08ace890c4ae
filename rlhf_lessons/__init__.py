"""rlhf_lessons: the helper package of the RLHF notebooks, one module per concept.

The pipeline, in the order the notebooks teach it::

    data (01) -> policy: pretrain + SFT (02) -> judge (03) -> PPO (04)
              -> what optimisation does with the judge (05)
              -> the same pipeline in TRL, on many GPUs (08)

Algorithm modules (the maths, in each notebook's order; no plots, no paths):

- ``config``       frozen configs and the fast / default / gpu presets
- ``hub``          can the Hugging Face Hub be reached? (one bounded probe)
- ``preference_formats``  a learner's rows (HH, prompt + answers, TRL messages) as HH,
                   and HH pairs as TRL's dataset formats (08)
- ``data``         HH-RLHF and Dolly: Hub first, the bundled ``data/`` offline
- ``batching``     padding, position ids, EOS truncation, masked statistics
- ``models``       building, saving and loading GPT-2s and tokenizers
- ``lean_gpt2``    the speed layer: a lean GPT-2 forward and KV cache
- ``generation``   the one sampler (KV cache, temperature, top-k / top-p)
- ``pretrain``     next-token pretraining (02)
- ``sft``          supervised fine-tuning on chosen answers (02)
- ``reward``       the judge: Bradley-Terry loss, model, pairs, training (03)
- ``rollout``      the models, sampling and scoring of a PPO rollout (04)
- ``ppo``          KL shaping, GAE, the clipped update, the loop (04)
- ``dpo``          the DPO loss and answer log-probs (07; timed by scripts/gpu_check.py)
- ``overoptimisation``  answer-feature drift, proxy vs gold, hackable rewards (05)
- ``trl_bridge``   the course's pairs, policy and judge handed to TRL (08)
- ``checks``       the exercises' checks: hand-made cases, a hint per classic bug

Measurement, artefacts and presentation:

- ``analysis``     what separates chosen from rejected; answer features (01, 05)
- ``rewrites``     controlled rewrites of one answer (03, 05)
- ``evaluate``     accuracy with intervals, baselines, rewrite effects,
                   sample-and-score, held-out summaries (03-05)
- ``artefacts``    the only module that knows ``outputs/`` and ``data/models/``
- ``plots``, ``widgets``   everything a notebook shows
- ``runner``       executes notebooks headless (``make run``, the tests)
- ``utils``        device, precision, seeding, atomic writes, lr schedule
"""
