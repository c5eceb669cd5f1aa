"""How a PROM item reads on the patient's page: the site's licensed text, else our short label.

Licensed instruments (EQ-5D-5L, ODI, BPI, HADS, PCS, PSEQ) may not have their wording in
the repository (models/instruments.py). A site that holds a licence loads its text as
files outside the repository, in REGISTRY_PROM_TEXT_DIR:

    <dir>/<SITE CODE>/<instrument>.<language>.json   (the site's own copy, read first)
    <dir>/<instrument>.<language>.json               (for every site)

    {"items": {"mo": {"text": "Your mobility today", "choices": {"1": "...", ..., "5": "..."}}}}

Entries that do not fit the definition (an unknown item, a value off the item's scale)
are left out with a warning, so a bad file never breaks the page; an item without text
falls back to the short label and the scale. Values and validation never come from
these files: only the words shown.
"""

import functools
import json
import logging
from pathlib import Path

from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from ..proms.instruments import INSTRUMENTS

log = logging.getLogger(__name__)

# Our own short labels, translated (the English ones are those of models/instruments.py).
SHORT_LABELS = {
    ("eq5d5l", "mo"): _("Mobility"),
    ("eq5d5l", "sc"): _("Self-care"),
    ("eq5d5l", "ua"): _("Usual activities"),
    ("eq5d5l", "pd"): _("Pain / discomfort"),
    ("eq5d5l", "ad"): _("Anxiety / depression"),
    ("eq5d5l", "vas"): _("Your health today (0 = the worst, 100 = the best you can imagine)"),
    ("bpi_sf", "worst"): _("Pain at its worst in the last 24 hours"),
    ("bpi_sf", "least"): _("Pain at its least in the last 24 hours"),
    ("bpi_sf", "average"): _("Pain on average"),
    ("bpi_sf", "now"): _("Pain right now"),
    ("bpi_sf", "general_activity"): _("How pain interfered with your general activity"),
    ("bpi_sf", "mood"): _("How pain interfered with your mood"),
    ("bpi_sf", "walking"): _("How pain interfered with your walking ability"),
    ("bpi_sf", "normal_work"): _("How pain interfered with your normal work"),
    ("bpi_sf", "relations"): _("How pain interfered with your relations with other people"),
    ("bpi_sf", "sleep"): _("How pain interfered with your sleep"),
    ("bpi_sf", "enjoyment"): _("How pain interfered with your enjoyment of life"),
    ("odi", "s1"): _("Pain intensity"),
    ("odi", "s2"): _("Personal care"),
    ("odi", "s3"): _("Lifting"),
    ("odi", "s4"): _("Walking"),
    ("odi", "s5"): _("Sitting"),
    ("odi", "s6"): _("Standing"),
    ("odi", "s7"): _("Sleeping"),
    ("odi", "s8"): _("Sex life"),
    ("odi", "s9"): _("Social life"),
    ("odi", "s10"): _("Travelling"),
}


def item_label(instrument: str, item) -> object:
    """Our short label of `item` (translated), or "<instrument>, item N"."""
    known = SHORT_LABELS.get((instrument, item.code))
    if known is not None:
        return known
    number = INSTRUMENTS[instrument].item_codes.index(item.code) + 1
    return _ItemNumber(INSTRUMENTS[instrument].name, number)


class _ItemNumber:
    def __init__(self, name: str, number: int):
        self.name, self.number = name, number

    def __str__(self):
        return gettext("%(instrument)s, item %(number)s") % {"instrument": self.name,
                                                              "number": self.number}


def text_dir() -> Path | None:
    return Path(settings.REGISTRY_PROM_TEXT_DIR) if settings.REGISTRY_PROM_TEXT_DIR else None


@functools.lru_cache(maxsize=256)
def _loaded(directory: str, site_code: str, instrument: str, language: str) -> dict:
    base = Path(directory)
    for path in (base / site_code / f"{instrument}.{language}.json", base / f"{instrument}.{language}.json"):
        if path.is_file():
            return _checked(path, instrument)
    return {}


def _checked(path: Path, instrument: str) -> dict:
    """item code -> {"text": str, "choices": {value: str}}, only what fits the definition."""
    definition = INSTRUMENTS[instrument]
    try:
        items = json.loads(path.read_text(encoding="utf-8")).get("items", {})
        assert isinstance(items, dict)
    except (OSError, ValueError, AttributeError, AssertionError) as exc:
        log.warning("Licensed PROM text %s not read: %s", path, exc)
        return {}
    out = {}
    for code, entry in items.items():
        item = definition.item(code)
        if item is None or not isinstance(entry, dict):
            log.warning("Licensed PROM text %s: '%s' is not an item of %s; left out.", path, code,
                        definition.name)
            continue
        choices = {}
        for value, words in (entry.get("choices") or {}).items():
            if str(value).isdigit() and int(value) in item.allowed and isinstance(words, str):
                choices[int(value)] = words
            else:
                log.warning("Licensed PROM text %s: %s value '%s' is off the scale %s-%s; left out.",
                            path, code, value, item.low, item.high)
        text = entry.get("text")
        out[code] = {"text": text if isinstance(text, str) else "", "choices": choices}
    return out


def licensed(site_code: str, instrument: str, item: str, language: str | None = None) -> dict:
    """The site's licensed text of `item` in `language` (default: the active one), or {}."""
    directory = text_dir()
    if directory is None:
        return {}
    language = (language or translation.get_language() or "en")[:2]
    return _loaded(str(directory), site_code, instrument, language).get(item, {})


def forget() -> None:
    """Read the files again (after a site loaded new ones; tests)."""
    _loaded.cache_clear()


class ItemText:
    """The question of a PROM item as shown in the active language: the licensed text, else
    our short label. A str() at render time, like Django's lazy translations."""

    def __init__(self, site_code: str, instrument: str, item: str, short_label):
        self.site_code, self.instrument, self.item = site_code, instrument, item
        self.short_label = short_label

    def __str__(self):
        return licensed(self.site_code, self.instrument, self.item).get("text") or str(self.short_label)

    @property
    def has_choices(self) -> bool:
        """Whether the site loaded the answers' wording (in any of the page's languages)."""
        return any(licensed(self.site_code, self.instrument, self.item, code).get("choices")
                   for code, _name in settings.LANGUAGES)

    def help(self, name: str, low: int, high: int):
        return _Help(self, name, low, high)


class _Help:
    def __init__(self, text: ItemText, name: str, low: int, high: int):
        self.text, self.name, self.low, self.high = text, name, low, high

    def __str__(self):
        if licensed(self.text.site_code, self.text.instrument, self.text.item).get("text"):
            return gettext("%(instrument)s: choose one answer.") % {"instrument": self.name}
        return gettext("%(instrument)s: answer with a number from %(low)s to %(high)s, as on the "
                       "questionnaire your clinic gave you.") % {
            "instrument": self.name, "low": self.low, "high": self.high}

    def __bool__(self):
        return True


class _Choice:
    def __init__(self, site_code: str, instrument: str, item: str, value: int):
        self.site_code, self.instrument, self.item, self.value = site_code, instrument, item, value

    def __str__(self):
        words = licensed(self.site_code, self.instrument, self.item).get("choices", {}).get(self.value)
        return f"{self.value} – {words}" if words else str(self.value)


def choice_text(site_code: str, instrument: str, item: str, value: int) -> object:
    return _Choice(site_code, instrument, item, value)
