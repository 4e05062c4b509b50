"""The jterator editor (``/experiments/<id>/pipeline``) in a real browser against the real server.

The tests change viewer_site's stored jterator project; the ``editor`` fixture
puts the original back afterwards (and waits for debug jobs to end first), so
that the other tests see the experiment as it was built.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from .ui import TIMEOUT_MS

#: debug jobs start a process per site: they may take a while on a busy machine
JOB_TIMEOUT_MS = 180_000


def _project(site) -> dict:
    token = site.login(site.owner)
    response = site.server.call("GET", f"/jtui/experiments/{site.experiment_id}/project", token)
    assert response.status_code == 200, response.text
    return response.json()["data"]


def _wait_for_debug_jobs(site, timeout: float = 180) -> None:
    token = site.login(site.owner)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = site.server.call(
            "POST", f"/jtui/experiments/{site.experiment_id}/jobs/status", token, json={}
        )
        status = response.json()["data"]
        if status is None or status["state"] == "TERMINATED":
            return
        time.sleep(0.5)
    raise AssertionError("the debug jobs did not end")


@pytest.fixture
def editor(owner_page, viewer_site) -> Iterator[object]:
    """The owner's page on the editor of viewer_site's experiment; its project is restored."""
    original = _project(viewer_site)
    page = owner_page
    page.goto(f"{viewer_site.base_url}/experiments/{viewer_site.experiment_id}/pipeline")
    page.locator("[data-testid=pipeline-module]").first.wait_for(timeout=TIMEOUT_MS)
    page.locator("[data-testid=available-module]").first.wait_for(timeout=TIMEOUT_MS)
    page.original_project = original
    try:
        yield page
    finally:
        _wait_for_debug_jobs(viewer_site)
        token = viewer_site.login(viewer_site.owner)
        restored = viewer_site.server.call(
            "POST",
            f"/jtui/experiments/{viewer_site.experiment_id}/project",
            token,
            json={"project": original},
        )
        assert restored.status_code == 200, restored.text


def module_row(page, name: str):
    return page.locator(f"[data-testid=pipeline-module][data-name='{name}']")


def module_names(page) -> list[str]:
    return page.locator("[data-testid=pipeline-module]").evaluate_all(
        "rows => rows.map(r => r.dataset.name)"
    )


def settings_of(page, name: str):
    """Select a module and wait for its settings."""
    module_row(page, name).locator(".name").click()
    settings = page.locator(f"[data-testid=module-settings][data-module='{name}']")
    settings.wait_for(timeout=TIMEOUT_MS)
    return settings


def options(select) -> list[str]:
    return select.locator("option").evaluate_all("os => os.map(o => o.value)")


def set_output(settings, handle: str, key: str) -> None:
    field = settings.locator(f"[data-testid=output-{handle}]")
    field.fill(key)
    field.press("Tab")  # change fires when the field loses focus


def add_by_button(page, name: str) -> None:
    page.fill("[data-testid=module-search]", name)
    item = page.locator(f"[data-testid=available-module][data-name='{name}']")
    item.locator("[data-testid=add-module]").click()
    page.fill("[data-testid=module-search]", "")


def notice(page) -> str:
    box = page.locator("[data-testid=pipeline-notice]")
    box.wait_for(timeout=TIMEOUT_MS)
    return box.inner_text()


def pipeline_error(page) -> str:
    box = page.locator("[data-testid=pipeline-error]")
    box.wait_for(timeout=TIMEOUT_MS)
    return box.inner_text()


def submission(page) -> str | None:
    """The submission the results pane shows (None before the first run)."""
    state = page.locator("[data-testid=run-state]")
    return state.get_attribute("data-submission") if state.count() else None


def wait_for_results(page, count: int, before: str | None) -> None:
    """Wait until the jobs of a submission other than `before` have ended (`count` of them)."""
    page.wait_for_function(
        """before => { const s = document.querySelector('[data-testid=run-state]');
                       return s && s.dataset.submission !== before
                              && s.dataset.state === 'TERMINATED'; }""",
        arg=before or "",
        timeout=JOB_TIMEOUT_MS,
    )
    page.wait_for_function(
        "n => document.querySelectorAll('[data-testid=job-result]').length === n"
        " && [...document.querySelectorAll('[data-testid=show-log]')].every(b => !b.disabled)",
        arg=count,
        timeout=TIMEOUT_MS,
    )


def test_build_check_run_and_save_a_pipeline(editor, viewer_site, browser_artifacts) -> None:
    page = editor
    # start from an empty pipeline, with channel c0 only
    while page.locator("[data-testid=pipeline-module]").count():
        page.locator("[data-testid=remove-module]").first.click()
    while page.locator("[data-testid=remove-output]").count():
        page.locator("[data-testid=remove-output]").first.click()
    page.locator("[data-testid=input-channel][data-name=c1] [data-testid=remove-channel]").click()
    assert options(page.locator("[data-testid=channel-choice]")) == ["c1"]  # only unused ones
    page.select_option("[data-testid=channel-choice]", "c1")
    page.click("[data-testid=add-channel]")
    channel_names = page.locator("[data-testid=input-channel]").evaluate_all(
        "rows => rows.map(r => r.dataset.name)"
    )
    assert channel_names == ["c0", "c1"]

    # smooth by drag and drop, the others by drag or by the + button
    drop = page.locator("[data-testid=drop-hint]")  # the end of the list
    page.locator("[data-testid=available-module][data-name=smooth]").drag_to(drop)
    add_by_button(page, "threshold_manual")
    page.locator("[data-testid=available-module][data-name=label]").drag_to(drop)
    add_by_button(page, "register_objects")
    add_by_button(page, "measure_intensity")
    assert module_names(page) == [
        "smooth", "threshold_manual", "label", "register_objects", "measure_intensity",
    ]  # fmt: skip

    # the search filters the list; "?" shows a module's source
    page.fill("[data-testid=module-search]", "thresh")
    shown = page.locator("[data-testid=available-module]").evaluate_all(
        "rows => rows.map(r => r.dataset.name)"
    )
    assert shown and all("thresh" in name for name in shown)
    page.locator(
        "[data-testid=available-module][data-name=threshold_manual] [data-testid=module-source]"
    ).click()
    source = page.locator("[data-testid=source-code]")
    source.wait_for(timeout=TIMEOUT_MS)
    assert "def main(" in source.inner_text()
    page.keyboard.press("Escape")
    page.fill("[data-testid=module-search]", "")

    # settings: piped inputs offer only upstream outputs of a matching type
    smooth = settings_of(page, "smooth")
    assert options(smooth.locator("[data-testid=input-image]")) == ["c0", "c1"]
    smooth.locator("[data-testid=input-image]").select_option("c0")
    smooth.locator("[data-testid=input-filter_size]").fill("3")
    smooth.locator("[data-testid=input-plot]").select_option("true")
    threshold = settings_of(page, "threshold_manual")
    image_choices = options(threshold.locator("[data-testid=input-image]"))
    assert image_choices == ["c0", "c1", "smooth.smoothed_image"]
    threshold.locator("[data-testid=input-image]").select_option("smooth.smoothed_image")
    threshold.locator("[data-testid=input-threshold]").fill("1000")
    threshold.locator("[data-testid=input-plot]").select_option("true")
    label = settings_of(page, "label")
    assert options(label.locator("[data-testid=input-mask]")) == ["threshold_manual.mask"]
    register = settings_of(page, "register_objects")
    assert options(register.locator("[data-testid=input-mask]")) == [
        "threshold_manual.mask", "label.label_image",
    ]  # fmt: skip
    register.locator("[data-testid=input-mask]").select_option("label.label_image")
    set_output(register, "objects", "Blobs")
    measure = settings_of(page, "measure_intensity")
    # the server's handle types: objects inputs take registered objects and label images
    assert options(measure.locator("[data-testid=input-extract_objects]")) == [
        "label.label_image", "Blobs",
    ]  # fmt: skip
    assert measure.locator("[data-testid=input-extract_objects]").input_value() == "Blobs"
    measure.locator("[data-testid=input-intensity_image]").select_option("c1")
    page.select_option("[data-testid=output-choice]", "Blobs")
    page.click("[data-testid=add-output]")

    # check (the server's)
    page.click("[data-testid=check]")
    assert "passed the check" in notice(page)

    # run on two sites chosen from the job list
    page.click("[data-testid=run]")
    rows = page.locator("[data-testid=job-row]")
    rows.first.wait_for(timeout=TIMEOUT_MS)
    assert rows.count() == 2
    cells = rows.first.locator("td").all_inner_texts()
    assert cells[2:] == ["plate01", "A01", "0", "0"]
    rows.nth(1).locator("[data-testid=choose-job]").check()
    before = submission(page)
    page.click("[data-testid=run-jobs]")
    wait_for_results(page, 2, before)
    states = page.locator("[data-testid=job-result]").evaluate_all(
        "rows => rows.map(r => r.dataset.state)"
    )
    assert states == ["ok", "ok"], page.locator("[data-testid=results]").inner_text()

    # a module's figure: the heatmaps of its panels
    settings_of(page, "threshold_manual")
    page.locator("[data-testid=job-result][data-job='2'] [data-testid=show-figure]").click()
    heatmaps = page.locator("[data-testid=figure-heatmap]")
    heatmaps.first.wait_for(timeout=TIMEOUT_MS)
    assert heatmaps.count() == 2
    size = heatmaps.first.evaluate("c => [c.width, c.height]")
    assert size == [512, 512]
    # the mask panel is black and white: the squares of well A02 are white
    white = heatmaps.nth(1).evaluate(
        """c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                  let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i] === 255) n++;
                  return n; }"""
    )
    assert white > 0.03 * 512 * 512
    page.screenshot(path=str(browser_artifacts / "pipeline_editor_figure.png"))
    page.keyboard.press("Escape")
    page.locator("[data-testid=figure-dialog]").wait_for(state="detached", timeout=TIMEOUT_MS)

    # the log of a job
    page.locator("[data-testid=job-result][data-job='1'] [data-testid=show-log]").click()
    stdout = page.locator("[data-testid=log-stdout]")
    stdout.wait_for(timeout=TIMEOUT_MS)
    assert "Blobs" in stdout.inner_text()
    page.keyboard.press("Escape")

    # save (after one more change) and compare with what the server stored
    page.locator("[data-testid=output-object][data-name=Blobs] [data-testid=as-polygons]").uncheck()
    page.locator("[data-testid=unsaved]").wait_for(timeout=TIMEOUT_MS)
    page.click("[data-testid=save]")
    assert notice(page) == "Saved."
    page.screenshot(path=str(browser_artifacts / "pipeline_editor.png"))
    stored = _project(viewer_site)
    pipeline = stored["pipeline"]
    assert [e["source"] for e in pipeline["pipeline"]] == [
        "smooth.py", "threshold_manual.py", "label.py", "register_objects.py",
        "measure_intensity.py",
    ]  # fmt: skip
    assert all(e["active"] for e in pipeline["pipeline"])
    assert pipeline["input"]["channels"] == [
        {"name": "c0", "correct": False}, {"name": "c1", "correct": False},
    ]  # fmt: skip
    assert pipeline["output"]["objects"] == [{"name": "Blobs", "as_polygons": False}]

    def handle(module: str, kind: str, name: str) -> dict:
        (found,) = [h for h in stored["handles"][module][kind] if h["name"] == name]
        return found

    assert handle("smooth", "input", "image")["key"] == "c0"
    assert handle("smooth", "input", "filter_size")["value"] == 3
    assert handle("smooth", "input", "plot")["value"] is True
    assert handle("threshold_manual", "input", "image")["key"] == "smooth.smoothed_image"
    assert handle("threshold_manual", "input", "threshold")["value"] == 1000
    assert handle("label", "input", "mask")["key"] == "threshold_manual.mask"
    assert handle("register_objects", "input", "mask")["key"] == "label.label_image"
    assert handle("register_objects", "output", "objects")["key"] == "Blobs"
    assert handle("measure_intensity", "input", "extract_objects")["key"] == "Blobs"
    assert handle("measure_intensity", "input", "intensity_image")["key"] == "c1"

    # a debug job that fails: a red panel, a message and the error in its log
    smooth = settings_of(page, "smooth")
    smooth.locator("[data-testid=input-filter_size]").fill("4")
    page.click("[data-testid=run]")
    page.locator("[data-testid=job-row]").first.wait_for(timeout=TIMEOUT_MS)
    page.locator("[data-testid=job-row]").nth(1).locator("[data-testid=choose-job]").uncheck()
    before = submission(page)
    page.click("[data-testid=run-jobs]")
    wait_for_results(page, 1, before)
    assert page.locator("[data-testid=job-result]").get_attribute("data-state") == "failed"
    assert "Job 1 failed" in page.locator("[data-testid=results-error]").inner_text()
    page.locator("[data-testid=job-result] [data-testid=show-log]").click()
    assert "odd positive integer" in page.locator("[data-testid=log-stderr]").inner_text()
    assert not page.page_errors and not page.blocked_requests


def test_duplicate_outputs_and_unmatched_inputs_are_refused(editor, viewer_site) -> None:
    page = editor
    original = page.original_project
    first, label = module_names(page)[:2]
    assert (first, label) == ("threshold_c0", "label")

    # a module added twice gets a suffix; renaming it to a name in use is refused
    add_by_button(page, "label")
    assert "label_1" in module_names(page)
    module_row(page, "label_1").locator("[data-testid=rename-module]").click()
    field = page.locator("[data-testid=rename-module-input]")
    field.fill("label")
    field.press("Enter")
    assert "must be unique" in page.locator("[data-testid=rename-error]").inner_text()
    field.fill("label_again")
    field.press("Enter")
    assert "label_again" in module_names(page) and "label_1" not in module_names(page)
    module_row(page, "label_again").locator("[data-testid=remove-module]").click()

    # a duplicate output name: a message at the field, Save refused, Check names the place
    settings = settings_of(page, "label")
    set_output(settings, "label_image", "threshold_c0.mask")
    message = settings.locator("[data-testid=handle-error]")
    message.wait_for(timeout=TIMEOUT_MS)
    assert "Names of outputs must be unique!" in message.inner_text()
    page.click("[data-testid=save]")
    assert "Not saved" in pipeline_error(page)
    problems = page.locator("[data-testid=pipeline-problems]").inner_text()
    assert "module label, handle label_image: Names of outputs must be unique!" in problems
    assert _project(viewer_site) == original
    page.click("[data-testid=check]")
    error = pipeline_error(page)
    assert "Check failed" in error and "module label, handle label_image" in error
    assert "produced twice" in error
    set_output(settings_of(page, "label"), "label_image", "label.label_image")
    assert settings.locator("[data-testid=handle-error]").count() == 0

    # an unmatched piped input: label moved above the threshold that makes its mask
    module_row(page, "label").locator("[data-testid=move-up]").click()
    assert module_names(page)[:2] == ["label", "threshold_c0"]
    settings = settings_of(page, "label")
    mask = settings.locator("[data-testid=input-mask]")
    assert options(mask) == ["threshold_c0.mask"]  # shown as not available, nothing else
    assert "not available" in mask.locator("option").first.inner_text()
    assert "is not an input channel, an input object type or an output of an earlier" in (
        settings.inner_text()
    )
    assert "fault" in (module_row(page, "label").get_attribute("class") or "")
    page.click("[data-testid=check]")
    error = pipeline_error(page)
    assert "module label, handle mask" in error and "threshold_c0.mask" in error
    page.click("[data-testid=save]")
    assert "Not saved" in pipeline_error(page)
    page.click("[data-testid=run]")
    page.click("[data-testid=run-jobs]")
    assert "Not run" in page.locator("[data-testid=jobs-dialog] .error").inner_text()
    page.keyboard.press("Escape")
    assert _project(viewer_site) == original
    assert not page.page_errors and not page.blocked_requests


def test_hotkeys_work_with_the_keyboard_only(editor, viewer_site) -> None:
    page = editor
    names = module_names(page)
    selected = page.locator("[data-testid=settings-name]")
    assert selected.inner_text() == names[0]

    # typing in a field is not a hotkey
    page.focus("[data-testid=module-search]")
    page.keyboard.type("s")
    assert page.locator("[data-testid=pipeline-notice]").count() == 0
    page.keyboard.press("Escape")
    page.keyboard.press("Tab")  # leave the field
    page.evaluate("() => document.activeElement && document.activeElement.blur()")

    page.keyboard.press("j")
    assert selected.inner_text() == names[1]
    page.keyboard.press("ArrowDown")
    assert selected.inner_text() == names[2]
    page.keyboard.press("k")
    assert selected.inner_text() == names[1]
    page.keyboard.press("ArrowUp")
    assert selected.inner_text() == names[0]
    page.keyboard.press("k")  # stays at the first
    assert selected.inner_text() == names[0]

    page.keyboard.press("c")
    assert "passed the check" in notice(page)
    page.keyboard.press("s")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=pipeline-notice]')?.textContent === 'Saved.'",
        timeout=TIMEOUT_MS,
    )
    page.keyboard.press("r")
    page.locator("[data-testid=jobs-dialog]").wait_for(timeout=TIMEOUT_MS)
    page.locator("[data-testid=job-row]").first.wait_for(timeout=TIMEOUT_MS)
    page.keyboard.press("Escape")  # closes the dialog
    page.locator("[data-testid=jobs-dialog]").wait_for(state="detached", timeout=TIMEOUT_MS)
    page.keyboard.press("r")
    run = page.locator("[data-testid=run-jobs]")
    run.wait_for(timeout=TIMEOUT_MS)
    page.wait_for_function(
        "() => document.activeElement?.dataset.testid === 'run-jobs'", timeout=TIMEOUT_MS
    )
    before = submission(page)
    page.keyboard.press("Enter")  # the first site is chosen: run it
    wait_for_results(page, 1, before)
    assert page.locator("[data-testid=job-result]").get_attribute("data-state") == "ok"
    assert _project(viewer_site)["pipeline"] == page.original_project["pipeline"]
    assert not page.page_errors and not page.blocked_requests


def _leave_dialog(page):
    dialog = page.locator("[data-testid=leave-dialog]")
    dialog.wait_for(timeout=TIMEOUT_MS)
    return dialog


def _asks_before_unload(page) -> bool:
    """Whether a reload or closing the tab would ask (the page's beforeunload answer)."""
    return page.evaluate(
        """() => { const e = new Event('beforeunload', {cancelable: true});
                   window.dispatchEvent(e); return e.defaultPrevented; }"""
    )


def test_leaving_with_unsaved_changes_asks(editor, viewer_site) -> None:
    page = editor
    eid = viewer_site.experiment_id
    pipeline_url = f"{viewer_site.base_url}/experiments/{eid}/pipeline"
    first = module_names(page)[0]
    assert not _asks_before_unload(page)

    # a change: the app's links ask; Stay keeps the page and the change
    module_row(page, first).locator("[data-testid=toggle-active]").click()
    page.locator("[data-testid=unsaved]").wait_for(timeout=TIMEOUT_MS)
    assert _asks_before_unload(page)
    page.click("[data-testid=experiment-nav] a.crumb")
    dialog = _leave_dialog(page)
    assert "not saved" in dialog.inner_text()
    dialog.locator("[data-testid=leave-stay]").click()
    dialog.wait_for(state="detached", timeout=TIMEOUT_MS)
    assert page.url == pipeline_url
    assert "inactive" in (module_row(page, first).get_attribute("class") or "")

    # Escape is Stay too; so is logging out
    page.click("[data-testid=tab-viewer]")
    _leave_dialog(page)
    page.keyboard.press("Escape")
    page.locator("[data-testid=leave-dialog]").wait_for(state="detached", timeout=TIMEOUT_MS)
    page.click("[data-testid=logout]")
    _leave_dialog(page).locator("[data-testid=leave-stay]").click()
    assert page.url == pipeline_url
    assert page.locator("[data-testid=appbar-user]").count() == 1

    # the browser's forward and back ask as well (the address comes back when refused)
    page.evaluate("() => { history.pushState(null, '', '/experiments'); history.back(); }")
    page.wait_for_function(
        "u => location.href === u", arg=pipeline_url, timeout=TIMEOUT_MS
    )  # fmt: skip
    page.go_forward()
    _leave_dialog(page).locator("[data-testid=leave-stay]").click()
    page.wait_for_function("u => location.href === u", arg=pipeline_url, timeout=TIMEOUT_MS)
    assert page.locator("[data-testid=pipeline-editor]").count() == 1

    # Leave without saving: gone, nothing stored
    page.click("[data-testid=experiment-nav] a.crumb")
    _leave_dialog(page).locator("[data-testid=leave-discard]").click()
    page.wait_for_url(f"{viewer_site.base_url}/experiments", timeout=TIMEOUT_MS)
    assert page.locator("[data-testid=pipeline-editor]").count() == 0
    assert _project(viewer_site) == page.original_project
    assert not _asks_before_unload(page)
    assert not page.page_errors and not page.blocked_requests


def test_no_question_after_save_and_save_and_leave(editor, viewer_site) -> None:
    page = editor
    eid = viewer_site.experiment_id
    first, second = module_names(page)[-2:]  # measurements: nothing else depends on them

    # saved: no question
    module_row(page, first).locator("[data-testid=toggle-active]").click()
    page.click("[data-testid=save]")
    assert notice(page) == "Saved."
    assert not _asks_before_unload(page)
    page.click("[data-testid=experiment-nav] a.crumb")
    page.wait_for_url(f"{viewer_site.base_url}/experiments", timeout=TIMEOUT_MS)
    assert page.locator("[data-testid=leave-dialog]").count() == 0
    stored = _project(viewer_site)["pipeline"]["pipeline"]
    assert [e["active"] for e in stored][-2:] == [False, True]

    # Save and leave stores the change, then goes
    page.goto(f"{viewer_site.base_url}/experiments/{eid}/pipeline")
    module_row(page, second).wait_for(timeout=TIMEOUT_MS)
    module_row(page, second).locator("[data-testid=toggle-active]").click()
    page.click("[data-testid=experiment-nav] a.crumb")
    _leave_dialog(page).locator("[data-testid=leave-save]").click()
    page.wait_for_url(f"{viewer_site.base_url}/experiments", timeout=TIMEOUT_MS)
    stored = _project(viewer_site)["pipeline"]["pipeline"]
    assert [e["active"] for e in stored][-2:] == [False, False]
    assert not page.page_errors and not page.blocked_requests


def test_input_objects_from_the_experiment(editor, viewer_site) -> None:
    page = editor
    from .synthetic import OBJECT_TYPE

    # the experiment's object types (no Plates, Wells, Sites) can be loaded as inputs
    choice = page.locator("[data-testid=input-object-choice]")
    assert options(choice) == [OBJECT_TYPE]
    page.click("[data-testid=add-input-object]")
    row = page.locator(f"[data-testid=input-object][data-name={OBJECT_TYPE}]")
    row.wait_for(timeout=TIMEOUT_MS)
    assert choice.is_disabled()  # each type once
    page.locator("[data-testid=unsaved]").wait_for(timeout=TIMEOUT_MS)

    # piped inputs that take labels offer it; images do not
    names = module_names(page)
    label = settings_of(page, "label")
    mask_choices = label.locator("[data-testid=input-mask] option").all_inner_texts()
    assert f"{OBJECT_TYPE} (input objects)" in mask_choices
    assert "c0 (channel)" not in mask_choices
    threshold = settings_of(page, names[0])
    assert OBJECT_TYPE not in options(threshold.locator("[data-testid=input-image]"))

    # the pipeline registers objects of that name as well: refused here and by the server
    register = [n for n in names if n.startswith("register")][0]
    settings = settings_of(page, register)
    assert "Names of outputs must be unique!" in settings.inner_text()
    # measure the loaded objects instead of registering them again
    set_output(settings, "objects", "Registered")
    page.locator(
        f"[data-testid=output-object][data-name={OBJECT_TYPE}] [data-testid=remove-output]"
    ).click()
    page.click("[data-testid=check]")
    assert "passed the check" in notice(page)
    page.click("[data-testid=save]")
    assert notice(page) == "Saved."
    stored = _project(viewer_site)["pipeline"]
    assert stored["input"]["objects"] == [{"name": OBJECT_TYPE}]
    assert stored["output"]["objects"] == []

    # removed again: the modules that took it are marked
    row.locator("[data-testid=remove-input-object]").click()
    measure = [n for n in names if n.startswith("measure")][0]
    assert "fault" in (module_row(page, measure).get_attribute("class") or "")
    assert not page.page_errors and not page.blocked_requests


def test_module_names_follow_the_server(editor, viewer_site) -> None:
    page = editor
    first = module_names(page)[0]
    # the rule comes from the API description: refused at once, with the server's pattern
    module_row(page, first).locator("[data-testid=rename-module]").click()
    field = page.locator("[data-testid=rename-module-input]")
    field.fill("bad name")
    field.press("Enter")
    assert "does not match" in page.locator("[data-testid=rename-error]").inner_text()
    field.press("Escape")

    # without the rule in the description, the server's refusal is what the user sees
    def without_pattern(route) -> None:
        response = route.fetch()
        spec = response.json()
        body = spec["paths"]["/jtui/experiments/{experiment_id}/project"]["post"]["requestBody"]
        schema = body["content"]["application/json"]["schema"]["properties"]["project"]
        del schema["properties"]
        route.fulfill(response=response, json=spec)

    page.route("**/api/openapi.json", without_pattern)
    page.reload()
    module_row(page, first).wait_for(timeout=TIMEOUT_MS)
    module_row(page, first).locator("[data-testid=rename-module]").click()
    field.fill("bad name")
    field.press("Enter")
    module_row(page, "bad name").wait_for(timeout=TIMEOUT_MS)
    page.click("[data-testid=save]")
    error = pipeline_error(page)
    assert "Not saved" in error and "module name of letters, digits, _ and -" in error
    assert "fault" in (module_row(page, "bad name").get_attribute("class") or "")
    assert _project(viewer_site) == page.original_project
    page.unroute("**/api/openapi.json")
    assert not page.page_errors and not page.blocked_requests
