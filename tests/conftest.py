"""Session fixtures of the learning tests (tests/test_learning_*.py): the learning data and the
quickstart model (the baseline, and PSDiff's teacher), each made once per test session."""
import pytest

from learning_fixtures import make_learning_data, run_quickstart


@pytest.fixture(scope="session")
def learning_data(tmp_path_factory):
    """The learning SynthPS and the ImageNet MobileNetV2 in a temporary folder (LearningData)."""
    return make_learning_data(tmp_path_factory.mktemp("learning"))


@pytest.fixture(scope="session")
def quickstart_run(learning_data):
    """configs/quick_schedules/quickstart.yaml trained on the learning SynthPS (TrainedRun)."""
    return run_quickstart(learning_data)


@pytest.fixture(scope="session", autouse=True)
def protocol_cache(tmp_path_factory):
    """Parsed protocol files are cached in a session folder, not in the user's ~/.cache."""
    folder = tmp_path_factory.mktemp("ps_plugin_cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PS_PLUGIN_CACHE", str(folder))
        yield folder
