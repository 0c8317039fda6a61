import pytest

from tests.contract import contract
from tests.utils import require


@pytest.fixture(autouse=True)
def _official_specs():
    require(
        contract.specs_available(),
        f"HM's official specs are not at {contract.HM_API_DIR} (set HM_API_DIR or provide ../shared)",
    )
