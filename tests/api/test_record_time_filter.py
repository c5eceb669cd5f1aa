"""updated_since: a UTC offset no database stores (beyond ±15:59) is a 400 naming it, on every
list and export (PostgreSQL refused it with a 500); the rule is services/inputs.py, one for every channel."""

import pytest

pytestmark = pytest.mark.django_db

PATHS = ["sites", "patients", "implants", "visits", "adverse-events", "exports/visits",
         "exports/adverse-events"]


@pytest.mark.parametrize("path", PATHS)
def test_an_offset_beyond_15_59_is_refused_and_a_real_one_accepted(client_for, cohort, data_manager, path):
    client = client_for(data_manager)
    refused = client.get(f"/api/v1/{path}/", {"updated_since": "2020-02-01T07:54:22+22:36"})
    assert refused.status_code == 400
    assert "+22:36" in refused.json()["updated_since"][0]
    for accepted in ("2020-02-01T07:54:22+14:00", "2020-02-01T07:54:22-15:59"):
        assert client.get(f"/api/v1/{path}/", {"updated_since": accepted}).status_code == 200
