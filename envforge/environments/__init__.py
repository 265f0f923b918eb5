"""Running environment operations under Prefect: one run per environment at a time
(:mod:`~envforge.environments.locks`) and what a run reports back: the summary artifact, the
pull request comment and state (:mod:`~envforge.environments.feedback`). The flows in
``flows/environments.py`` and ``flows/day_two.py`` orchestrate with these."""
