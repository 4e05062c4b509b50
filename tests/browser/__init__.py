"""Browser tests of the web UI (Chromium driven by Playwright; see conftest.py).

A package, unlike the other test directories: its modules import as
``browser.conftest`` and ``browser.<module>``, so the module name ``conftest``
stays that of tests/conftest.py, which tests and tests/helpers.py import.
"""
