"""Orchestration over the plain library: settings, the steps layer, Prefect flows, the CLI.

- :mod:`pipelines.settings`: the one frozen ``Settings`` object (kwargs > ``DELINQ_*``
  environment > ``delinq.toml`` > defaults; unknown keys are refused by name);
- :mod:`pipelines.steps`: ingest, build the training set, train, score; each takes the
  settings and returns a small frozen summary. The CLI and the flows both call these;
- :mod:`pipelines.flows` / :mod:`pipelines.deploy`: thin Prefect task wrappers and the
  scheduled deployments; :mod:`pipelines.cli`: the ``delinq`` command;
- :mod:`pipelines.runtime`: environment, warnings and log routing, in one place.
"""
