"""Regenerate the README's screenshots (docs/screenshots/*.png) from the demo registry.

Builds a throw-away SQLite registry with `load_demo`, serves it with runserver, and
drives Debian's chromium (Playwright) as the demo nurse: the site home page, the record
status grid, a visit form, and the first page of a patient summary PDF (rendered with
pypdfium2, a dev dependency). PNGs are kept small (< 300 KB each).

    .venv/bin/python docs/screenshots.py [--port 8765]
"""

import argparse
import io
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"]
PASSWORD = "registry-demo"  # the demo users' published password (README)


def run(env, *args):
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL)


def wait_for(url: str, seconds: int = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)  # noqa: S310 - our own local server
            return
        except OSError:
            time.sleep(0.5)
    sys.exit(f"the server at {url} did not answer")


def ids(env) -> dict:
    """A patient with a record to show (an adverse event, PROMs if any) and one of its
    completed follow-up visits."""
    code = (
        "import django, json; django.setup()\n"
        "from django.db.models import Count\n"
        "from registry.models import Site, Visit\n"
        "v = (Visit.objects.filter(patient__site__code='AMS', status='completed', nrs__isnull=False,"
        " timepoint='m6').annotate(e=Count('patient__adverse_events', distinct=True),"
        " p=Count('patient__visits__prom_answers', distinct=True))"
        ".order_by('-p', '-e', 'patient__registry_id').first())\n"
        "print(json.dumps({'site': Site.objects.get(code='AMS').pk, 'visit': v.pk,"
        " 'patient': v.patient_id}))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True,
                         capture_output=True, text=True).stdout
    import json

    return json.loads(out.strip().splitlines()[-1])


def save(png: bytes, name: str) -> None:
    from PIL import Image  # matplotlib's dependency: already installed

    image = Image.open(io.BytesIO(png)).convert("RGB")
    target = OUT / name
    for colours in (256, 128, 64):
        image.quantize(colours).save(target, optimize=True)
        if target.stat().st_size < 300_000:
            break
    print(f"{target.relative_to(ROOT)}: {target.stat().st_size // 1024} KB")


def pdf_first_page(pdf: bytes) -> bytes:
    import pypdfium2

    document = pypdfium2.PdfDocument(pdf)
    image = document[0].render(scale=1.4).to_pil()
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp}/screenshots.sqlite3",
               "DJANGO_SETTINGS_MODULE": "config.settings.local", "CELERY_BROKER_URL": "memory://"}
        env.pop("CELERY_TASK_ALWAYS_EAGER", None)
        run(env, "migrate", "--noinput")
        run(env, "load_demo")
        found = ids(env)
        server = subprocess.Popen([sys.executable, "manage.py", "runserver", "--noreload",
                                   f"127.0.0.1:{args.port}"], cwd=ROOT, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{args.port}"
        try:
            wait_for(f"{base}/admin/login/")
            from playwright.sync_api import sync_playwright

            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.goto(f"{base}/admin/login/?next=/admin/")
                page.fill("#id_username", "nurse")
                page.fill("#id_password", PASSWORD)
                page.click("input[type=submit]")
                page.wait_for_selector("#worklist")
                save(page.screenshot(), "home.png")
                page.goto(f"{base}/admin/registry/status-grid/{found['site']}/?per_page=25")
                page.wait_for_selector("#status-grid")
                save(page.screenshot(), "status-grid.png")
                page.goto(f"{base}/admin/registry/visit/{found['visit']}/change/")
                page.wait_for_selector("#id_nrs")
                # From the timepoint down to the scores: what she fills in.
                page.evaluate("document.querySelector('#id_timepoint').scrollIntoView()")
                save(page.screenshot(), "visit-form.png")
                pdf = page.request.get(f"{base}/admin/registry/patient/{found['patient']}/summary.pdf")
                assert pdf.ok and pdf.body().startswith(b"%PDF"), pdf.status
                save(pdf_first_page(pdf.body()), "patient-summary-pdf.png")
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
