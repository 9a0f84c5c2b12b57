"""Small motion-only synthetic dataset folders shared by the tokenizer tests."""
import pytest

from beingh0.tokenizer.quickstart import synthetic_dataset


@pytest.fixture(scope="session")
def synth_sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("tok-synth")
    # 12 episodes of 4 s, both hands: 96 one-second windows to train on; 3 held-out episodes.
    return synthetic_dataset(root / "train", 12, 11, seconds=4.0), synthetic_dataset(root / "val", 3, 12, seconds=4.0)
