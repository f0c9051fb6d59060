"""The @storpoolonly scenarios in the fast suite, on the third rig (tests/apirig.py): the real
StorPool backend against the API emulator, no kernel. The collection hook (tests/conftest.py)
keeps only the @storpoolonly ones here; the others run in test_features on the fake."""

import pytest
from pytest_bdd import scenarios

scenarios("data_safety_edges.feature")


@pytest.fixture
def rig(tmp_path, request):
    from ..apirig import ApiRig

    api = ApiRig(tmp_path)
    request.addfinalizer(api.close)
    return api
