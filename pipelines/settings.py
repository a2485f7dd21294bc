"""One frozen settings object for the whole product, passed explicitly.

Sources, highest priority first: keyword arguments (the CLI's options), environment
variables prefixed ``DELINQ_`` (for example ``DELINQ_STORE_URL``; nested training options
as ``DELINQ_TRAIN__VAL_WEEKS``), the TOML file named by ``DELINQ_CONFIG`` (default
``delinq.toml`` in the working directory, if present; training options in a ``[train]``
table), then the defaults below.

An unknown key in any source is an error naming the key, where it came from and the nearest
valid name (a typo in ``delinq.toml`` must not be silently ignored); a bad value is an error
naming the setting. Both raise :class:`SettingsError`, which the CLI prints in one line.

Library packages (``features``, ``models``, ``serving``) never read settings: the steps
(:mod:`pipelines.steps`) pass the values they need as plain arguments.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Mapping
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

ENV_PREFIX = "DELINQ_"
#: Separator of nested keys in environment variables: ``DELINQ_TRAIN__VAL_WEEKS``.
ENV_NESTED = "__"
#: ``DELINQ_`` variables that are not settings (they are read elsewhere), so the unknown-key
#: check lets them pass: the settings file path, the tests' PostgreSQL server, the
#: benchmarks' folder of real data sets and the tests' worker-death hook
#: (:data:`TEST_DIE_AFTER_PART_ENV`).
TEST_DIE_AFTER_PART_ENV = "DELINQ_TEST_DIE_AFTER_PART"
OTHER_ENV_VARS = frozenset({"DELINQ_CONFIG", "DELINQ_TEST_PG_URL", "DELINQ_SHARED_DATA",
                            TEST_DIE_AFTER_PART_ENV})


#: Settings that may carry credentials: never shown unmasked, never a flow-run parameter
#: (flows read them from the environment or the settings file, as the CLI does).
SECRET_FIELDS = ("store_url", "mlflow_tracking_uri", "notify_webhook_url")


class SettingsError(ValueError):
    """A settings source holds an unknown key or a bad value (message says which)."""


class Grid(StrEnum):
    """Spacing of the training set's ``as_of`` dates."""

    weekly = "weekly"
    monthly = "monthly"


class TrainSettings(BaseModel):
    """User-facing training options (``[train]`` in TOML, ``DELINQ_TRAIN__<NAME>``).

    ``None`` (the default of each) keeps the model library's default, so the defaults are
    defined once, in ``models.train.TrainConfig``; :func:`pipelines.steps.train_config` maps
    these onto it.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    n_estimators: int | None = Field(None, gt=0, description="Max boosting rounds.")
    early_stopping_rounds: int | None = Field(None, gt=0, description="Rounds without gain.")
    num_leaves: int | None = Field(None, gt=1, description="Max leaves per tree.")
    max_depth: int | None = Field(None, description="Max tree depth (<= 0: no cap).")
    learning_rate: float | None = Field(None, gt=0, description="Shrinkage per round.")
    min_child_samples: int | None = Field(None, gt=0, description="Min rows per leaf.")
    feature_fraction: float | None = Field(None, gt=0, le=1, description="Columns per tree.")
    bagging_fraction: float | None = Field(None, gt=0, le=1, description="Rows per tree.")
    lambda_l2: float | None = Field(None, ge=0, description="L2 regularisation.")
    n_jobs: int | None = Field(None, gt=0, description="LightGBM threads (None: by size).")
    val_weeks: int | None = Field(None, gt=0, description="Validation period, weeks of as_of.")
    test_weeks: int | None = Field(None, gt=0, description="Test period, weeks of as_of.")
    test_end: date | None = Field(
        None, description="Last as_of date of the test period (default: the book's last "
        "mature date).")
    embargo_days: int | None = Field(None, ge=0, description="Gap between periods, days.")
    max_censored_share: float | None = Field(
        None, ge=0, le=1, description="Max censored share of a test as_of date (0-1)."
    )
    sample_max_rows: int | None = Field(
        None, ge=0, description="Training-period rows per model above which they are sampled "
        "(0: never sample).")
    sample_positive_rate: float | None = Field(
        None, gt=0, le=1, description="Share of positive rows kept (overrides the budget).")
    sample_negative_rate: float | None = Field(
        None, gt=0, le=1, description="Share of negative rows kept (overrides the budget).")
    sample_holdout_max_rows: int | None = Field(
        None, ge=0, description="Validation and test rows per model above which they are "
        "sampled (0: kept in full).")
    sample_seed: int | None = Field(
        None, ge=0, description="Seed of the training-set sample (default: seed).")


class GateSettings(BaseModel):
    """The quality gate's thresholds (``[gate]`` in TOML, ``DELINQ_GATE__<NAME>``).

    ``None`` keeps the model library's default (``models.gate.GatePolicy``, mapped by
    :func:`pipelines.steps.gate_policy`); the bootstrap's seed is the settings' ``seed``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_positive_accounts: int | None = Field(
        None, ge=0, description="Min distinct positive accounts in the test period.")
    min_positive_rows: int | None = Field(
        None, ge=0, description="Min positive rows in the test period.")
    resamples: int | None = Field(None, gt=0, description="Account bootstrap resamples.")
    quantile: float | None = Field(
        None, gt=0, lt=1, description="Lower bound of the capture@10 difference (0-1).")
    auc_tolerance: float | None = Field(
        None, ge=0, le=1, description="How far the AUC may fall below the aging rule's.")
    capture_tolerance: float | None = Field(
        None, ge=0, le=1,
        description="How far below 0 the capture@10 difference's lower bound may be "
                    "(default 0: the model must beat the rule as served).")


class MaterialitySettings(BaseModel):
    """When a past-due amount counts (``[materiality]`` in TOML,
    ``DELINQ_MATERIALITY__<NAME>``): it must exceed both thresholds (DESIGN section 5).

    ``None`` keeps the feature library's default (``features.spec.Materiality``: 500 and
    1%, the EBA GL/2016/07 non-retail pair), mapped by :func:`pipelines.steps.materiality`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    absolute: float | None = Field(
        None, ge=0, description="Past-due amount (book currency) it must exceed.")
    share: float | None = Field(
        None, ge=0, le=1, description="Share (0-1) of the open balance it must exceed.")


class ActionSettings(BaseModel):
    """Thresholds of the action policy table (``[actions]`` in TOML,
    ``DELINQ_ACTIONS__<NAME>``).

    ``None`` keeps the serving library's default (``serving.actions.ActionPolicy``, mapped
    by :func:`pipelines.steps.action_policy`).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    high_early_warning: float | None = Field(
        None, ge=0, le=1, description="Early-warning probability (0-1) of a call.")
    high_persistence: float | None = Field(
        None, ge=0, le=1, description="Persistence probability (0-1) of an escalation.")
    legal_amount: float | None = Field(
        None, ge=0, description="Amount 90+ days past due (currency) of a legal review.")
    dispute_share: float | None = Field(
        None, gt=0, description="Disputed share (0-1) of the past-due amount that is "
        "resolved first.")
    broken_promise_days: int | None = Field(
        None, ge=1, description="Days after a promise broke during which the account's "
        "action is 'broken promise: follow up' (issue 17).")


class PlausibilitySettings(BaseModel):
    """Plausibility limits (``[plausibility]`` in TOML, ``DELINQ_PLAUSIBILITY__<NAME>``).

    ``None`` keeps the library's default (``features.contract.options.Plausibility``,
    mapped by :func:`pipelines.steps.plausibility`). A failed run check stops the run
    before it replaces the last worklist unless anomalies are accepted
    (``--accept-anomalies``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    date_min: date | None = Field(None, description="First plausible date.")
    date_max: date | None = Field(None, description="First implausible date (exclusive end).")
    amount_cap: float | None = Field(None, gt=0, description="Largest plausible amount.")
    min_invoices: int | None = Field(
        None, ge=0, description="Invoice rows from which table sizes are compared.")
    min_ratio: float | None = Field(
        None, ge=0, le=1, description="Least payments/invoices and accounts ratio (0-1).")
    max_days_beyond_data: int | None = Field(
        None, ge=0, description="Days as_of may lie after the data's last event.")
    max_balance_change: float | None = Field(
        None, ge=0, description="Relative open balance change against the last run (0-1).")
    max_accounts_change: float | None = Field(
        None, ge=0, description="Relative change of accounts scored against the last run.")
    max_late_share_change: float | None = Field(
        None, ge=0, le=1, description="Change of the share of late accounts (points, 0-1).")


class WorkbenchSettings(BaseModel):
    """The workbench (``[workbench]`` in TOML, ``DELINQ_WORKBENCH__<NAME>``; issue 15)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = Field("127.0.0.1", description="Address `delinq serve` listens on.")
    port: int = Field(8000, ge=1, le=65535, description="Port `delinq serve` listens on.")
    analyst_scope: Literal["any", "assigned"] = Field(
        "any", description="Analysts record outcomes on any account, or only on the "
        "accounts assigned to them.")
    session_hours: float = Field(12.0, gt=0, description="Lifetime of a sign-in, hours.")
    login_max_failures: int = Field(
        5, ge=1, description="Failed sign-ins per username and client within the window "
        "before the login answers 429.")
    login_window_s: float = Field(300.0, gt=0, description="Login rate-limit window, seconds.")
    cookie_secure: bool = Field(
        False, description="Send the session cookie over HTTPS only (set it behind TLS).")


class DunningSettings(BaseModel):
    """Automated reminders (``[dunning]`` in TOML, ``DELINQ_DUNNING__<NAME>``; issue 22).

    Nothing is sent unless ``enabled``. ``smtp_password`` is a secret (masked in ``repr``,
    never a flow-run parameter; :meth:`Settings.secrets` lists it for redaction).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = Field(False, description="Render and send reminders after each "
                          "published nightly run.")
    delivery: Literal["outbox", "smtp"] = Field(
        "outbox", description="Where letters go: .eml files in the outbox folder, or SMTP.")
    outbox_dir: Path | None = Field(
        None, description="Outbox folder; default <data_dir>/dunning/outbox.")
    company_name: str = Field("Example Wholesale Ltd", description="Who signs the letters.")
    payment_link: str = Field("https://pay.example.com/{account_id}",
                              description="Payment link; {account_id} is filled in.")
    sender: str = Field("receivables@example.com", description="From address.")
    currency: str = Field("USD", description="Book currency (ISO code) when the invoices "
                          "carry none.")
    templates_dir: Path | None = Field(
        None, description="Folder of edited letter templates, searched before the "
        "package's (serving/dunning/templates).")
    min_days_between: int = Field(7, ge=1, description="Least days between two letters.")
    pre_due_days: int = Field(5, ge=0, description="Invoices due within this many days "
                              "get the pre-due reminder (0: none).")
    max_per_run: int = Field(5000, ge=0, description="Letters sent per run at most (the "
                             "rest wait for the next run).")
    rate_per_minute: int = Field(60, ge=0, description="SMTP messages per minute at most "
                                 "(0: unlimited).")
    plan_installments: int = Field(3, ge=1, description="Installments of a payment plan.")
    plan_min_amount: float = Field(100.0, gt=0, description="Least installment (currency).")
    plan_interval_days: int = Field(30, ge=1, description="Days between installments.")
    smtp_host: str | None = Field(None, description="SMTP server.")
    smtp_port: int = Field(587, ge=1, le=65535, description="SMTP port.")
    smtp_tls: Literal["starttls", "ssl", "none"] = Field(
        "starttls", description="starttls (587), ssl (465) or none (a loopback relay).")
    smtp_user: str | None = Field(None, description="SMTP login (none: no login).")
    smtp_password: SecretStr | None = Field(None, description="SMTP password (a secret).")


#: Secrets inside nested settings tables (left out of flow-run parameters like
#: :data:`SECRET_FIELDS`).
NESTED_SECRETS = {"dunning": ("smtp_password",)}


class Settings(BaseSettings):
    """Product settings. Units are in the field names or descriptions."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter=ENV_NESTED, frozen=True, extra="forbid"
    )

    data_dir: Path = Field(Path("data"), description="Root of stores and exports.")
    # Secrets (may carry a password): SecretStr, shown masked in repr and dumps; read them
    # through resolved_tracking_uri / resolved_store_url (see SECRET_FIELDS).
    mlflow_tracking_uri: SecretStr | None = Field(
        None, description="MLflow tracking URI; default sqlite:///<data_dir>/mlflow.db."
    )
    store_url: SecretStr | None = Field(
        None, description="SQLAlchemy URL of the worklist store; default SQLite in data_dir."
    )
    # Time semantics and labels (DESIGN sections 4-5).
    delinquency_dpd: int = Field(
        30, gt=0, description="Days past due that make an invoice delinquent."
    )
    persistence_days: int = Field(30, gt=0, description="Persistence horizon after as_of, days.")
    grid: Grid = Field(Grid.weekly, description="Training as_of grid: weekly or monthly.")
    # Validation (DESIGN section 3).
    max_bad_share: float = Field(
        0.05, ge=0, le=1, description="Max share of bad rows per table (0-1)."
    )
    # Models.
    early_warning_model: str = "delinq-early-warning"
    persistence_model: str = "delinq-persistence"
    seed: int = Field(0, description="Seed of training and of the synthetic generator.")
    train: TrainSettings = Field(default_factory=TrainSettings)
    gate: GateSettings = Field(default_factory=GateSettings)
    materiality: MaterialitySettings = Field(default_factory=MaterialitySettings)
    actions: ActionSettings = Field(default_factory=ActionSettings)
    plausibility: PlausibilitySettings = Field(default_factory=PlausibilitySettings)
    workbench: WorkbenchSettings = Field(default_factory=WorkbenchSettings)
    dunning: DunningSettings = Field(default_factory=DunningSettings)
    # Explanations.
    shap_table_budget_mb: int = Field(
        512, gt=0, description="Memory budget of TreeSHAP tables, MB."
    )
    # Runs (issue 18): a running run without a heartbeat for this long is taken as dead.
    run_stale_after_min: int = Field(
        10, gt=1, description="Minutes without a heartbeat after which a running run is "
        "reaped (marked failed, its files removed); above the 1-minute heartbeat."
    )
    # Retention (issue 18): applied after each nightly score and by `delinq runs prune`.
    retain_explanations_runs: int = Field(
        14, ge=1, description="Published runs whose explanation files are kept (newest)."
    )
    retain_scores_days: int | None = Field(
        None, gt=0, description="Days of as_of a run's rows are kept; default and minimum: "
        "the label horizon (delinquency_dpd + persistence_days) plus 60, so past runs can "
        "still be judged against their outcomes."
    )
    retain_exports_days: int = Field(30, ge=1, description="Days of as_of exports are kept.")
    retain_kpis_days: int = Field(
        730, gt=0, description="Days of as_of a run's KPIs are kept (its record, after its "
        "rows went with retain_scores_days); never below the scores' days."
    )
    min_free_disk_mb: int = Field(
        1024, ge=0, description="Free disk (MB) under data_dir below which the nightly does "
        "not start; raised to twice the last run's explanation file when that is larger."
    )
    # Collections loop (issue 17): a promise is kept by payments up to its promised date
    # plus these days; until then its account is off the main ranking.
    promise_grace_days: int = Field(
        3, ge=0, description="Days after a promised date in which payments still keep the "
        "promise (features.pit.promises)."
    )
    # Staleness (issue 19): a champion whose training data ends longer ago warns.
    stale_model_days: int = Field(
        120, gt=0, description="Days between a run's as_of and the end of a champion's "
        "training data (its test period's last as_of) above which the run warns."
    )
    # Live performance (issue 19): demotion, holdout, persistent drift, shadow promotion.
    live_fallback_runs: int = Field(
        4, ge=1, description="Consecutive resolved runs in which a champion ranks untouched "
        "accounts below the aging rule (AUC) after which it is demoted to challenger."
    )
    live_holdout_share: float = Field(
        0.0, ge=0, le=0.5, description="Share (0-0.5) of accounts, drawn by a stable hash of "
        "the account id, that get no model-driven priority (the aging rule ranks them)."
    )
    drift_persist_runs: int = Field(
        3, ge=0, description="Runs in a row with a PSI alert on the same feature after "
        "which the run warns (0: never)."
    )
    promote_on_live: bool = Field(
        False, description="Promote a challenger whose live performance beat the champion's "
        "on the same runs' untouched accounts in live_fallback_runs resolved runs."
    )
    # Notification (issue 18): where a failed scheduled run is reported (JSON POST).
    notify_webhook_url: SecretStr | None = Field(
        None, description="Webhook URL told when a scheduled run fails (may hold a token)."
    )
    # Scale-out (issue 20): the nightly's score in account partitions, on Dask when P > 1.
    partitions: int = Field(
        1, ge=1, description="Account partitions of the nightly score (crc32 of account_id); "
        "1: one process, no cluster."
    )
    work_location: str | None = Field(
        None, description="Where partitions and their outputs are written: a path or an "
        "fsspec URL every Dask worker can reach (default <data_dir>/work)."
    )
    dask_scheduler: str | None = Field(
        None, description="Address of an existing Dask scheduler (tcp://host:8786); unset: "
        "a local cluster of worker processes when partitions > 1."
    )
    # Orchestration (DESIGN section 9).
    timezone: str = "UTC"
    nightly_cron: str = "0 2 * * *"
    weekly_cron: str = "0 3 * * 0"

    @property
    def resolved_tracking_uri(self) -> str:
        """The MLflow tracking URI in force (explicit, or SQLite under ``data_dir``)."""
        if self.mlflow_tracking_uri is not None:
            return self.mlflow_tracking_uri.get_secret_value()
        return f"sqlite:///{(self.data_dir / 'mlflow.db').resolve()}"

    @property
    def resolved_store_url(self) -> str:
        """The worklist store URL in force (explicit, or SQLite under ``data_dir``)."""
        if self.store_url is not None:
            return self.store_url.get_secret_value()
        return f"sqlite:///{(self.data_dir / 'worklist.db').resolve()}"

    @property
    def min_scores_days(self) -> int:
        """The least ``retain_scores_days``: label horizon plus 60 days."""
        return self.delinquency_dpd + self.persistence_days + 60

    @property
    def resolved_retain_scores_days(self) -> int:
        """Days of runs kept: the setting, never below :attr:`min_scores_days`."""
        return max(self.retain_scores_days or 0, self.min_scores_days)

    @property
    def resolved_retain_kpis_days(self) -> int:
        """Days of KPIs kept: the setting, never below :attr:`resolved_retain_scores_days`
        (KPIs outlive the scores and explanations they were computed beside)."""
        return max(self.retain_kpis_days, self.resolved_retain_scores_days)

    def secrets(self) -> list[str]:
        """The secret parts of the credential-bearing settings (passwords, tokens), for
        :func:`serving.redact.redact` wherever text might quote them."""
        from serving.redact import url_secrets

        found = [part for name in SECRET_FIELDS for part in url_secrets(
            None if getattr(self, name) is None else getattr(self, name).get_secret_value())]
        password = self.dunning.smtp_password
        return found + ([password.get_secret_value()] if password is not None else [])

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        check_keys(getattr(init_settings, "init_kwargs", {}), where="keyword arguments")
        check_environment(os.environ)
        toml_path = config_path()
        return (init_settings, env_settings, _CheckedToml(settings_cls, toml_file=toml_path))


class _CheckedToml(TomlConfigSettingsSource):
    """The TOML source, refusing keys that are not settings."""

    def __call__(self) -> dict[str, Any]:
        data = super().__call__()
        check_keys(data, where=str(self.toml_file_path))
        return data


def config_path() -> Path:
    """The settings file in force: ``$DELINQ_CONFIG``, else ``./delinq.toml``."""
    return Path(os.environ.get("DELINQ_CONFIG", "delinq.toml"))


def _nearest(name: str, valid: Iterable[str]) -> str | None:
    match = difflib.get_close_matches(name, list(valid), n=1, cutoff=0.6)
    return match[0] if match else None


def _unknown(key: str, valid: Iterable[str], *, where: str) -> SettingsError:
    valid = sorted(valid)
    near = _nearest(key, valid)
    hint = f"did you mean {near!r}?" if near else f"valid names: {', '.join(valid)}"
    return SettingsError(f"unknown setting {key!r} in {where}; {hint}")


_NESTED: dict[str, type[BaseModel]] = {"train": TrainSettings, "gate": GateSettings,
                                       "actions": ActionSettings,
                                       "materiality": MaterialitySettings,
                                       "plausibility": PlausibilitySettings,
                                       "workbench": WorkbenchSettings,
                                       "dunning": DunningSettings}


def check_keys(data: Mapping[str, Any], *, where: str) -> None:
    """Raise :class:`SettingsError` for a key of ``data`` (or of its nested ``train``
    table) that is not a setting, naming the nearest valid one."""
    fields = Settings.model_fields
    for key, value in data.items():
        if key not in fields:
            raise _unknown(key, fields, where=where)
        nested = _NESTED.get(key)
        if nested is not None and isinstance(value, Mapping):
            for sub in value:
                if sub not in nested.model_fields:
                    names = [f"{key}.{n}" for n in nested.model_fields]
                    raise _unknown(f"{key}.{sub}", names, where=where)


def env_names() -> dict[str, str]:
    """Environment variable name -> setting path (``DELINQ_TRAIN__VAL_WEEKS`` ->
    ``train.val_weeks``) of every setting."""
    names = {f"{ENV_PREFIX}{f}".upper(): f for f in Settings.model_fields}
    for key, nested in _NESTED.items():
        names |= {f"{ENV_PREFIX}{key}{ENV_NESTED}{f}".upper(): f"{key}.{f}"
                  for f in nested.model_fields}
    return names


def check_environment(environ: Mapping[str, str]) -> None:
    """Raise :class:`SettingsError` for a ``DELINQ_*`` variable that is not a setting (nor
    one of :data:`OTHER_ENV_VARS`), naming the nearest valid variable."""
    valid = env_names()
    for var in sorted(environ):
        upper = var.upper()
        if upper.startswith(ENV_PREFIX) and upper not in valid and upper not in OTHER_ENV_VARS:
            raise _unknown(var, valid, where="the environment")


def _describe(error: ValidationError) -> str:
    parts = []
    for e in error.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "settings"
        parts.append(f"{loc}: {e['msg']} (got {e.get('input')!r})")
    return "invalid setting " + "; ".join(parts)


def load_settings(**overrides: Any) -> Settings:
    """Read settings now (file and environment), with explicit overrides on top.

    Raises :class:`SettingsError` for an unknown key or a bad value in any source.
    """
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError(_describe(exc)) from None
