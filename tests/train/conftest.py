import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread for the training tests: on a shared, loaded CPU two spinning OpenMP
    threads are many times slower, and these tests run many tiny ops."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
