"""rlhf_lessons: the helper package of the RLHF notebooks, one module per concept.

The pipeline, in the order the notebooks teach it::

    data (01) -> policy: pretrain + SFT (02) -> judge (03) -> PPO (04)
              -> what raters and judges pay for (05)
              -> what optimisation does with it (06)
              -> beyond PPO: best-of-N, RLOO/GRPO, DPO (07)
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
- ``dpo``          DPO: the loss, implicit reward and its accuracy, the trainer (07)
- ``group_pg``     RLOO / GRPO: group baselines, the clipped loss, the loop (07)
- ``raters``       surface features, an L1 logistic regression of who chose
                   what, the "be the rater" tally (05)
- ``sycophancy``   probes: agreeing with the user, giving in to pushback (05)
- ``overoptimisation``  answer-feature drift, proxy labels, beta sweep, hackable rewards (06)
- ``selection``    best-of-n order statistics, the tilt, Gao's fit, length share (06)
- ``calibration``  ECE, reliability, next-token confidence, temperature (06)
- ``biased_raters``  simulated biased raters and head-only judges (06)
- ``budgets``      how much of each experiment notebooks 05-07 run, per preset
- ``checks``, ``checks_findings``  the exercises' checks (01-04, 05-07): hand-made
                   cases, a hint per classic bug
- ``trl_bridge``   the course's pairs, policy and judge handed to TRL (08)

Measurement, artefacts and presentation:

- ``analysis``     what separates chosen from rejected; answer features (01, 05, 06)
- ``rewrites``     controlled rewrites of one answer (03, 05, 06)
- ``evaluate``     accuracy with intervals, baselines, rewrite effects,
                   sample-and-score, held-out summaries (03-05)
- ``artefacts``    the only module that knows ``outputs/`` and ``data/models/``
- ``plots``, ``plots_findings``, ``widgets``   everything a notebook shows
  (``plots_findings``: the plots of notebooks 05-06)
- ``runner``       executes notebooks headless (``make run``, the tests)
- ``handouts``     executed notebook -> offline HTML, widgets drawn from their state
- ``slides``       notebook -> reveal.js deck that opens offline (``make slides``)
- ``utils``        device, precision, seeding, atomic writes, lr schedule
"""
