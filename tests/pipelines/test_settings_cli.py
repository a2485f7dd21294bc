"""Settings precedence, the Book contract's casting, and the CLI surface."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from features.contract.book import DATE_DTYPE, Book, columns_of
from pipelines.cli import app
from pipelines.settings import Grid, SettingsError, load_settings


def test_settings_precedence_file_env_kwargs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    cfg = tmp_path / "delinq.toml"
    cfg.write_text('data_dir = "from_file"\ndelinquency_dpd = 45\nstore_url = "sqlite:///f.db"\n')
    monkeypatch.setenv("DELINQ_CONFIG", str(cfg))
    monkeypatch.setenv("DELINQ_DELINQUENCY_DPD", "60")
    settings = load_settings(store_url="sqlite:///kw.db")
    assert settings.data_dir == Path("from_file")  # file beats default
    assert settings.delinquency_dpd == 60  # environment beats file
    assert settings.resolved_store_url == "sqlite:///kw.db"  # keyword beats environment
    with pytest.raises(Exception, match="frozen"):
        settings.seed = 3  # type: ignore[misc]


@pytest.fixture
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No settings file unless the test writes one (returned path); no DELINQ_ settings."""
    import os

    for var in list(os.environ):
        if var.startswith("DELINQ_") and var != "DELINQ_TEST_PG_URL":
            monkeypatch.delenv(var)
    cfg = tmp_path / "delinq.toml"
    monkeypatch.setenv("DELINQ_CONFIG", str(cfg))
    return cfg


def test_unknown_keyword_names_the_nearest_setting(clean_env: Path):
    with pytest.raises(SettingsError, match=r"'delinquency_dp' in keyword arguments; "
                                            r"did you mean 'delinquency_dpd'\?"):
        load_settings(delinquency_dp=45)
    with pytest.raises(SettingsError, match=r"'train.val_weks'.*did you mean 'train.val_weeks'"):
        load_settings(train={"val_weks": 4})


def test_unknown_environment_variable_names_the_nearest(clean_env: Path,
                                                         monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("DELINQ_STORE_URI", "sqlite:///x.db")
    with pytest.raises(SettingsError, match=r"'DELINQ_STORE_URI' in the environment; "
                                            r"did you mean 'DELINQ_STORE_URL'\?"):
        load_settings()
    monkeypatch.delenv("DELINQ_STORE_URI")
    monkeypatch.setenv("DELINQ_TRAIN__TEST_WEKS", "4")
    with pytest.raises(SettingsError, match="did you mean 'DELINQ_TRAIN__TEST_WEEKS'"):
        load_settings()
    monkeypatch.delenv("DELINQ_TRAIN__TEST_WEKS")
    monkeypatch.setenv("DELINQ_TEST_PG_URL", "postgresql://x")  # not a setting, but known
    assert load_settings().grid is Grid.weekly


def test_unknown_key_in_the_toml_file_names_the_file_and_nearest(clean_env: Path):
    clean_env.write_text('grid = "monthly"\npersistance_days = 10\n')
    with pytest.raises(SettingsError, match=r"'persistance_days' in .*delinq.toml; "
                                            r"did you mean 'persistence_days'\?"):
        load_settings()
    clean_env.write_text("[train]\nval_weeks = 3\nlearning_rte = 0.1\n")
    with pytest.raises(SettingsError, match="did you mean 'train.learning_rate'"):
        load_settings()


def test_grid_is_an_enumeration_and_train_options_nest(clean_env: Path,
                                                       monkeypatch: pytest.MonkeyPatch):
    clean_env.write_text('grid = "monthly"\n[train]\nval_weeks = 3\ntest_weeks = 5\n')
    monkeypatch.setenv("DELINQ_TRAIN__VAL_WEEKS", "6")
    settings = load_settings()
    assert settings.grid is Grid.monthly
    assert (settings.train.val_weeks, settings.train.test_weeks) == (6, 5)  # env beats file
    assert settings.train.n_estimators is None  # unset: the model library's default
    with pytest.raises(SettingsError, match=r"invalid setting grid: .*'weekly' or 'monthly'"):
        load_settings(grid="daily")
    with pytest.raises(SettingsError, match="train.val_weeks"):
        load_settings(train={"val_weeks": 0})


def test_a_bad_setting_in_the_cli_is_one_line(clean_env: Path):
    clean_env.write_text("seeed = 3\n")
    result = CliRunner().invoke(app, ["worklist"])
    assert result.exit_code == 2
    assert "did you mean 'seed'?" in result.output and "Traceback" not in result.output


def test_bench_is_not_a_command():
    result = CliRunner().invoke(app, ["bench", "--help"])
    assert result.exit_code != 0
    assert "No such command" in result.output


def test_default_stores_live_under_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("DELINQ_CONFIG", str(tmp_path / "absent.toml"))
    settings = load_settings(data_dir=tmp_path)
    assert settings.resolved_tracking_uri == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    assert settings.resolved_store_url == f"sqlite:///{tmp_path.resolve()}/worklist.db"


def test_book_from_frames_casts_and_adds_bare_accounts():
    invoices = pd.DataFrame(
        {
            "invoice_id": ["I1", "I2"],
            "account_id": ["A1", "A2"],
            "issue_date": ["2024-01-01", "2024-01-05"],
            "due_date": ["2024-01-31", "2024-02-04"],
            "amount": [100, 250.5],
        }
    )
    before = invoices.copy(deep=True)
    book = Book.from_frames(invoices, accounts=pd.DataFrame({"account_id": ["A1"]}))
    assert list(book.invoices.columns[:5]) == list(columns_of("invoices"))[:5]
    assert str(book.invoices["issue_date"].dtype) == DATE_DTYPE
    assert book.invoices["amount"].dtype == "float64"
    assert sorted(book.accounts["account_id"]) == ["A1", "A2"]
    assert book.payments.empty and list(book.payments.columns) == list(columns_of("payments"))
    assert book.last_date == pd.Timestamp("2024-01-05")
    # The input frame is not mutated (values, dtypes and columns).
    pd.testing.assert_frame_equal(invoices, before)


@pytest.mark.parametrize(
    "args",
    [[], ["generate"], ["validate"], ["import"], ["train"], ["score"], ["worklist"], ["demo"],
     ["run"], ["schedule"]],
)
def test_every_command_has_help(args: list[str]):
    result = CliRunner().invoke(app, [*args, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_bad_as_of_is_one_clear_line(tmp_path: Path):
    result = CliRunner().invoke(app, ["score", str(tmp_path), "--as-of", "yesterday"])
    assert result.exit_code == 2
    assert "--as-of must be a date YYYY-MM-DD" in result.output
    assert "Traceback" not in result.output


FIXTURE = Path(__file__).parents[1] / "fixtures" / "highradius_sample.csv"


def test_import_highradius_needs_a_rate_for_mixed_currencies(tmp_path: Path):
    runner = CliRunner()
    refused = runner.invoke(app, ["import", "--format", "highradius", str(FIXTURE), "--out",
                                  str(tmp_path / "a")])
    assert refused.exit_code == 2
    assert "mixed_currency" in refused.output and "Traceback" not in refused.output
    done = runner.invoke(app, ["import", "--format", "highradius", str(FIXTURE), "--out",
                               str(tmp_path / "b"), "--rate", "CAD=0.74"])
    assert done.exit_code == 0, done.output
    checked = runner.invoke(app, ["validate", str(tmp_path / "b")])
    assert checked.exit_code == 0, checked.output
    assert "no row quarantined" in checked.output
