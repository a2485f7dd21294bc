"""The action policy (``actions.*``) through the steps layer: settings map onto
``serving.actions.ActionPolicy``, unset options keep the library's defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines import steps
from pipelines.settings import SettingsError, load_settings


@pytest.fixture
def no_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No settings file and no DELINQ_ settings from the caller's environment."""
    monkeypatch.setenv("DELINQ_CONFIG", str(tmp_path / "absent.toml"))


def test_action_policy_maps_the_settings(monkeypatch: pytest.MonkeyPatch,
                                         no_config: None) -> None:
    from serving.actions import ActionPolicy

    assert steps.action_policy(load_settings()) == ActionPolicy()
    monkeypatch.setenv("DELINQ_ACTIONS__LEGAL_AMOUNT", "25000")
    policy = steps.action_policy(load_settings(actions={"dispute_share": 0.5}))
    assert policy == ActionPolicy(legal_amount=25_000.0, dispute_share=0.5)
    with pytest.raises(SettingsError, match="did you mean 'actions.legal_amount'"):
        load_settings(actions={"legal_amont": 5})
    with pytest.raises(SettingsError, match="high_persistence"):
        load_settings(actions={"high_persistence": 1.5})
