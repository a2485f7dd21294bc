"""One frozen settings object for the whole product, passed explicitly.

Sources, highest priority first: keyword arguments, environment variables prefixed
``DELINQ_`` (for example ``DELINQ_STORE_URL``), the TOML file named by ``DELINQ_CONFIG``
(default ``delinq.toml`` in the working directory, if present), then the defaults below.

Library packages (``features``, ``models``, ``serving``) never read settings: the flows and
the CLI pass the values they need as plain arguments.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


class Settings(BaseSettings):
    """Product settings. Units are in the field names or descriptions."""

    model_config = SettingsConfigDict(env_prefix="DELINQ_", frozen=True, extra="ignore")

    data_dir: Path = Field(Path("data"), description="Root of stores and exports.")
    mlflow_tracking_uri: str | None = Field(
        None, description="MLflow tracking URI; default sqlite:///<data_dir>/mlflow.db."
    )
    store_url: str | None = Field(
        None, description="SQLAlchemy URL of the worklist store; default SQLite in data_dir."
    )
    # Time semantics and labels (DESIGN sections 4-5).
    delinquency_dpd: int = Field(30, description="Days past due that make an invoice delinquent.")
    persistence_days: int = Field(30, description="Persistence horizon after as_of, days.")
    grid: str = Field("weekly", description="Training as_of grid: weekly or monthly.")
    # Validation (DESIGN section 3).
    max_bad_share: float = Field(0.05, description="Max share of bad rows per table (0-1).")
    # Models.
    early_warning_model: str = "delinq-early-warning"
    persistence_model: str = "delinq-persistence"
    seed: int = 0
    # Explanations.
    shap_table_budget_mb: int = Field(512, description="Memory budget of TreeSHAP tables, MB.")
    # Orchestration (DESIGN section 9).
    timezone: str = "UTC"
    nightly_cron: str = "0 2 * * *"
    weekly_cron: str = "0 3 * * 0"

    @property
    def resolved_tracking_uri(self) -> str:
        """The MLflow tracking URI in force (explicit, or SQLite under ``data_dir``)."""
        return self.mlflow_tracking_uri or f"sqlite:///{(self.data_dir / 'mlflow.db').resolve()}"

    @property
    def resolved_store_url(self) -> str:
        """The worklist store URL in force (explicit, or SQLite under ``data_dir``)."""
        return self.store_url or f"sqlite:///{(self.data_dir / 'worklist.db').resolve()}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_path = Path(os.environ.get("DELINQ_CONFIG", "delinq.toml"))
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=toml_path),
        )


def load_settings(**overrides: object) -> Settings:
    """Read settings now (file and environment), with explicit overrides on top."""
    return Settings(**overrides)  # type: ignore[arg-type]
