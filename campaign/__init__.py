"""Radiation campaigns, the worker side: what a campaign injects (``plan``), how runs are
classified (``outcome``) and counted (``stats``), how chunks of injections run on worker
processes or a Dask cluster (``runner``), the model backend (``model_backend``), the
mission soak (``soak``, ``mission``) and the analysis and report (``analysis``,
``report``). It runs the chip model (``firmware_sim.accel``) as a library; the ground side
(``host``) only starts it and, for the link backend, talks to a target over a link
(docs/CAMPAIGNS.md)."""
