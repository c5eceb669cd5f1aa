"""Fuzzing the questionnaire pages for server errors (bounded, hypothesis): odd tokens, steps,
languages, actions and answers, on a live link and on dead ones. A 5xx fails the test."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from registry.models import EproLink
from registry.services import epro
from tests.epro.conftest import open_m3

BOUNDED = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                   suppress_health_check=list(HealthCheck))
NASTY = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["\x00", "a\x00", "9" * 40, "-1", "0", "1", "10", "11", "summary", "nl", "en",
                     "submit", "next", "back", "'; --", "%", "😀" * 5, "1e3", " 3 ", "3.0"]),
)
FIELDS = ["step", "action", "nrs", "satisfaction", "pgic", "lang", "return", "nrs_residual_limb",
          "eq5d5l_mo", "eq5d5l_vas", "bpi_sf_worst"]


def test_the_questionnaire_pages_give_no_server_error(client, site_a, settings):
    settings.REGISTRY_EPRO_RATE = "100000/min"
    settings.REGISTRY_EPRO_FAILURES_PER_IP = 100000
    _, visit = open_m3(site_a, etiology="postamputation", diagnosis="rlp_plp")
    _link, token = epro.link_create(visit=visit, channel=EproLink.Channel.PRINTED)

    @given(token_kind=st.sampled_from(["live", "nasty", "shape"]), nasty=NASTY,
           query=st.dictionaries(st.sampled_from(FIELDS), NASTY, max_size=3),
           form=st.dictionaries(st.sampled_from(FIELDS), NASTY, max_size=5),
           method=st.sampled_from(["get", "post"]))
    @BOUNDED
    def no_server_error(token_kind, nasty, query, form, method):
        path_token = {"live": token, "shape": "A" * 43}.get(token_kind, nasty.replace("/", ""))
        if not path_token:
            path_token = "x"
        path = f"/q/{path_token}/"
        try:
            response = client.get(path, query) if method == "get" else client.post(
                path + "?" + "&".join(f"{k}=1" for k in query), form)
        except ValueError:
            return  # the test client refuses to build a request with a NUL in the path
        assert response.status_code < 500, (path, query, form, response.status_code)

    no_server_error()
