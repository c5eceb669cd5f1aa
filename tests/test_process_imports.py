"""What every process carries: a web or worker process that has set Django up and loaded
the URLconf (every view, serializer and admin) has not imported pandas, SciPy or
matplotlib (about 150 MB together, issue 21). They load where an analysis or a plot is
computed. In a subprocess: the test suite itself has long imported them."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("pandas", "scipy", "matplotlib")

SCRIPT = """
import json, sys
import django
django.setup()
from django.urls import get_resolver
get_resolver().url_patterns  # the URLconf and everything it includes
import config.celery_app, registry.tasks  # a Celery worker's start
heavy = {heavy!r}
loaded = lambda: sorted(m for m in heavy if m in sys.modules)
started = loaded()
from registry.services import outcomes, plots
outcomes.outcome_summary  # the first use of an analysis: now they load
print(json.dumps([started, loaded()]))
"""


def test_a_fresh_process_loads_pandas_scipy_and_matplotlib_only_when_an_analysis_needs_them():
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env["DJANGO_SETTINGS_MODULE"] = "config.settings.local"
    result = subprocess.run([sys.executable, "-c", SCRIPT.format(heavy=HEAVY)], cwd=ROOT, env=env,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    at_start, after_use = json.loads(result.stdout.strip().splitlines()[-1])
    assert at_start == []
    assert after_use == sorted(HEAVY)
