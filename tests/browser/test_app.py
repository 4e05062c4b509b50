"""The app around the viewer in a real browser: login, experiments, errors on the page."""

from __future__ import annotations

import json

from .ui import TIMEOUT_MS, log_in, start_session


def test_the_app_is_served_at_the_root_and_falls_back_to_index(page, viewer_site) -> None:
    page.goto(f"{viewer_site.base_url}/")
    page.wait_for_url("**/login*", timeout=TIMEOUT_MS)  # not logged in: the login page
    page.goto(f"{viewer_site.base_url}/some/client/route")
    page.locator("[data-testid=login-form]").wait_for(timeout=TIMEOUT_MS)
    assert not page.page_errors and not page.blocked_requests


def test_a_wrong_password_says_so(page, viewer_site) -> None:
    page.goto(f"{viewer_site.base_url}/login")
    page.fill("input[name=username]", "bob")
    page.fill("input[name=password]", "not-the-password")
    page.click("button[type=submit]")
    error = page.locator("[data-testid=login-error]")
    error.wait_for(timeout=TIMEOUT_MS)
    assert "Wrong user name or password" in error.inner_text()
    assert page.evaluate("() => sessionStorage.getItem('tm.session')") is None


def test_login_shows_the_user_and_logout_forgets_the_token(page, viewer_site) -> None:
    log_in(page, viewer_site, viewer_site.owner)
    assert viewer_site.owner in page.locator("[data-testid=appbar-user]").inner_text()
    stored = json.loads(page.evaluate("() => sessionStorage.getItem('tm.session')"))
    assert stored["user"] == viewer_site.owner and stored["token"].count(".") == 2
    page.locator("[data-testid=experiment-row]").first.wait_for(timeout=TIMEOUT_MS)
    page.click("[data-testid=logout]")
    page.locator("[data-testid=login-form]").wait_for(timeout=TIMEOUT_MS)
    assert page.evaluate("() => sessionStorage.getItem('tm.session')") is None


def test_an_invalid_token_returns_to_the_login_page_with_a_message(page, viewer_site) -> None:
    page.goto(f"{viewer_site.base_url}/login")
    page.evaluate(
        "() => sessionStorage.setItem('tm.session', JSON.stringify({token: 'a.b.c', user: 'bob'}))"
    )
    page.goto(f"{viewer_site.base_url}/experiments")
    message = page.locator("[data-testid=login-message]")
    message.wait_for(timeout=TIMEOUT_MS)
    assert "expired or was revoked" in message.inner_text()


def test_a_revoked_token_returns_to_the_login_page(page, viewer_site) -> None:
    token = start_session(page, viewer_site, "bob")
    page.goto(f"{viewer_site.base_url}/experiments")
    page.locator("[data-testid=create-experiment]").wait_for(timeout=TIMEOUT_MS)
    viewer_site.server.call("POST", "/auth/logout_all", token)  # "log out everywhere"
    page.locator("[data-testid=experiment-filter]").fill("x")  # any action
    page.reload()
    page.locator("[data-testid=login-message]").wait_for(timeout=TIMEOUT_MS)


def test_an_unreachable_server_is_reported_on_the_page(page, viewer_site) -> None:
    start_session(page, viewer_site, viewer_site.owner)
    page.route("**/api/experiments", lambda route: route.abort("connectionrefused"))
    page.goto(f"{viewer_site.base_url}/experiments")
    error = page.locator("main [role=alert]")
    error.wait_for(timeout=TIMEOUT_MS)
    assert "cannot be reached" in error.inner_text()


def test_a_restarting_server_is_reported_on_the_page(page, viewer_site) -> None:
    start_session(page, viewer_site, viewer_site.owner)
    page.route(
        "**/api/experiments",
        lambda route: route.fulfill(status=503, body="<html>proxy: upstream down</html>"),
    )
    page.goto(f"{viewer_site.base_url}/experiments")
    error = page.locator("main [role=alert]")
    error.wait_for(timeout=TIMEOUT_MS)
    assert "restarting" in error.inner_text()


def test_create_filter_rename_share_and_delete_an_experiment(page, viewer_site) -> None:
    site = viewer_site
    log_in(page, site, site.owner)
    rows = page.locator("[data-testid=experiment-row]")
    rows.first.wait_for(timeout=TIMEOUT_MS)
    before = rows.count()
    page.click("[data-testid=create-experiment]")
    dialog = page.locator("[data-testid=create-dialog]")
    dialog.locator("input[name=name]").wait_for(timeout=TIMEOUT_MS)
    # the choices come from the API
    formats = dialog.locator("select[name=plate_format] option").all_inner_texts()
    assert formats == ["1 wells", "96 wells", "384 wells"]
    assert "cellvoyager" in dialog.locator("select[name=microscope_type]").inner_text()
    dialog.locator("input[name=name]").fill("browser-made")
    dialog.locator("textarea[name=description]").fill("made in a test")
    dialog.locator("select[name=plate_format]").select_option("96")
    dialog.locator("button[type=submit]").click()
    page.wait_for_function(
        f"() => document.querySelectorAll('[data-testid=experiment-row]').length === {before + 1}"
    )
    page.fill("[data-testid=experiment-filter]", "browser")
    assert rows.count() == 1
    row = rows.first
    row.get_by_role("button", name="Rename").click()
    page.fill("[data-testid=rename-input]", "browser-renamed")
    page.press("[data-testid=rename-input]", "Enter")
    page.get_by_text("browser-renamed").wait_for(timeout=TIMEOUT_MS)
    # an experiment without images: the viewer says what to do, no blank page
    row.locator("[data-testid=open-viewer]").click()
    error = page.locator("[data-testid=viewer-error]")
    error.wait_for(timeout=TIMEOUT_MS)
    assert "no images yet" in error.inner_text()
    page.go_back()
    page.fill("[data-testid=experiment-filter]", "browser")
    # share with bob, read only; then withdraw
    rows.first.locator("[data-testid=share]").click()
    share = page.locator("[data-testid=share-dialog]")
    share.locator("input[name=user]").fill("bob")
    share.locator("button[type=submit]").click()
    share.get_by_text("bob (read only)").wait_for(timeout=TIMEOUT_MS)
    bob = site.login("bob")
    names = [e["name"] for e in site.server.call("GET", "/api/experiments", bob).json()["data"]]
    assert "browser-renamed" in names
    share.get_by_role("button", name="withdraw").click()
    share.get_by_text("Not shared with anyone").wait_for(timeout=TIMEOUT_MS)
    names = [e["name"] for e in site.server.call("GET", "/api/experiments", bob).json()["data"]]
    assert "browser-renamed" not in names
    share.locator("button[title=Close]").click()
    # delete, after confirming
    rows.first.locator("[data-testid=delete]").click()
    page.click("[data-testid=confirm-delete]")
    page.get_by_text("No experiment matches the filter").wait_for(timeout=TIMEOUT_MS)
    token = site.login(site.owner)
    names = [e["name"] for e in site.server.call("GET", "/api/experiments", token).json()["data"]]
    assert "browser-renamed" not in names and site.experiment_name in names
