"""The workflow manager (``/experiments/<id>/workflow``) in a real browser against the real server.

A small experiment of its own (one well, one 64x64 site, one channel, registered with
``tm_add`` and not processed) is served by a live tm_server. The tests run in order on it:

1. the page before any submission: widgets, help, defaults, button states, refused values;
2. a step made to fail on purpose (metaconfig's ``regex`` set to a pattern that does not
   compile: the server stores any text, the step's job fails), its red bars and log, then the
   argument repaired and the stage resubmitted from the page: every stage turns done;
3. a submit while a workflow runs (409), and Kill.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from .synthetic import installation_env, run_program, write_pipeline
from .ui import TIMEOUT_MS, start_session

#: a whole workflow of one small site, on a busy 2-core machine
RUN_TIMEOUT_MS = 300_000
USER, PASSWORD = "wendy", "wendy-secret"
PLATE, ACQUISITION = "plate01", "acq01"
SIZE = 64
BAD_REGEX = "(?P<w>[A-Z"
PIPELINE = (
    ("threshold_manual", "threshold_c0", {"image": "c0", "threshold": 1000}),
    ("label", "label", {"mask": "threshold_c0.mask", "connectivity": 8}),
    ("register_objects", "register_blobs", {"mask": "label.label_image"}),
)


@dataclass
class WorkflowSite:
    base_url: str
    experiment_id: int
    server: object
    users: dict[str, str]

    def login(self, user: str) -> str:
        return self.server.login(user, self.users[user])

    def call(self, method: str, path: str, **kwargs):
        token = self.login(USER)
        return self.server.call(
            method, f"/api/experiments/{self.experiment_id}{path}", token, **kwargs
        )

    def description(self) -> dict:
        response = self.call("GET", "/workflow/description")
        assert response.status_code == 200, response.text
        return response.json()["data"]

    def status(self) -> dict | None:
        response = self.call("GET", "/workflow/status")
        assert response.status_code == 200, response.text
        return response.json()["data"]

    def wait_until_ended(self, timeout: float = 300) -> dict | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.status()
            if status is None or status["state"] == "TERMINATED":
                return status
            time.sleep(0.5)
        raise AssertionError("the workflow did not end")


def argument_value(description: dict, step: str, group: str, name: str):
    for stage in description["stages"]:
        for s in stage["steps"]:
            if s["name"] == step:
                return next(a["value"] for a in s[group] if a["name"] == name)
    raise KeyError(step)


def write_plate(directory: Path) -> None:
    import tifffile

    directory.mkdir(parents=True)
    pixels = np.full((SIZE, SIZE), 100, np.uint16)
    pixels[16:40, 20:44] = 3000
    tifffile.imwrite(
        directory / "small_A01_s0_cc0.tif", pixels, photometric="minisblack", metadata=None
    )


@pytest.fixture(scope="module")
def workflow_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkflowSite]:
    from helpers import live_server

    root = tmp_path_factory.mktemp("workflow_site")
    environ = installation_env(root)
    home = Path(environ["TMAPS_HOME"])
    home.mkdir(parents=True)
    write_plate(root / "microscope")
    run_program(environ, "tm_add", "user", "-n", USER, "-p", PASSWORD, "-e", "w@example.org")
    experiment_id = int(
        run_program(environ, "tm_add", "experiment", "-e", "small", "-u", USER,
                    "--microscope-type", "tiff", "--plate-format", "96").strip()
    )  # fmt: skip
    run_program(environ, "tm_add", "plate", "-e", experiment_id, "-p", PLATE)
    run_program(
        environ, "tm_add", "acquisition", "-e", experiment_id, "-p", PLATE, "-a", ACQUISITION
    )
    run_program(environ, "tm_add", "files", "-q", "-e", experiment_id, "-p", PLATE,
                "-a", ACQUISITION, "-s", root / "microscope")  # fmt: skip
    location = home / "experiments" / f"experiment_{experiment_id}" / "workflow" / "jterator"
    write_pipeline(location, pipeline=PIPELINE, channels=("c0",), object_type="Blobs")
    settings = {k: v for k, v in environ.items() if k.startswith("TMAPS_")}
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(live_server(extra_env=settings, unset=("TMAPS_STORAGE_HOME",)))
        site = WorkflowSite(server.url, experiment_id, server, {USER: PASSWORD})
        yield site
        with contextlib.suppress(Exception):
            site.wait_until_ended(120)


@pytest.fixture
def workflow_page(page, workflow_site: WorkflowSite):
    start_session(page, workflow_site, USER)
    page.goto(f"{workflow_site.base_url}/experiments/{workflow_site.experiment_id}/workflow")
    page.locator("[data-testid=stage-tab]").first.wait_for(timeout=TIMEOUT_MS)
    page.wait_for_function(
        "() => document.querySelector('[data-testid=workflow-state]')?.textContent.trim() !== '…'",
        timeout=TIMEOUT_MS,
    )
    return page


def tab(page, kind: str, name: str):
    return page.locator(f"[data-testid={kind}-tab][data-name='{name}']")


def open_step(page, stage: str, step: str) -> None:
    tab(page, "stage", stage).click()
    tab(page, "step", step).click()
    page.locator(f"[data-testid=step][data-name='{step}']").wait_for(timeout=TIMEOUT_MS)


def argument(page, group: str, name: str):
    return page.locator(f"[data-testid=panel-{group}] [data-testid=argument][data-name='{name}']")


def enabled(page, button: str) -> bool:
    return page.locator(f"[data-testid={button}]").is_enabled()


def button_states(page) -> dict[str, bool]:
    return {b: enabled(page, b) for b in ("submit", "resume", "resubmit", "kill")}


def wait_state(page, state: str, timeout: int = RUN_TIMEOUT_MS) -> None:
    page.locator(f"[data-testid=workflow-state][data-state='{state}']").wait_for(timeout=timeout)


# ----------------------------------------------------------------------------------- tests


def test_page_before_any_submission(workflow_page, workflow_site) -> None:
    page = workflow_page
    nav = page.locator("[data-testid=experiment-nav]")
    assert "small" in nav.inner_text()
    assert page.locator("[data-testid=tab-workflow]").get_attribute("class").split()[-1] == "active"
    stages = page.locator("[data-testid=stage-tab]").evaluate_all("t => t.map(e => e.dataset.name)")
    assert stages == [
        "image_conversion",
        "image_preprocessing",
        "pyramid_creation",
        "image_analysis",
    ]
    assert "not submitted yet" in page.locator("[data-testid=workflow-state]").inner_text()
    # nothing submitted: Submit on, Resume, Resubmit and Kill off
    assert button_states(page) == {
        "submit": True,
        "resume": False,
        "resubmit": False,
        "kill": False,
    }
    assert not enabled(page, "save")  # nothing changed

    # typed widgets with help and defaults from the server's description
    open_step(page, "image_conversion", "metaconfig")
    layout = argument(page, "batch_args", "stitch_layout")
    assert layout.get_attribute("data-kind") == "choice"
    assert "horizontal" in layout.locator("select option").all_inner_texts()
    assert "Order of sites" in layout.inner_text() and "default: horizontal" in layout.inner_text()
    assert argument(page, "batch_args", "mip").get_attribute("data-kind") == "checkbox"
    assert argument(page, "batch_args", "regex").get_attribute("data-kind") == "text"
    assert "(optional)" in argument(page, "batch_args", "regex").inner_text()
    memory = argument(page, "submission_args", "memory")
    assert memory.get_attribute("data-kind") == "number"
    assert "default: 2500" in memory.inner_text()

    # a value that is no number is refused in the page and never reaches the server
    before = workflow_site.description()
    memory.locator("input").fill("lots")
    assert "must be a number" in memory.locator("[data-testid=argument-error]").inner_text()
    page.click("[data-testid=save]")
    assert "Not saved" in page.locator("[data-testid=workflow-error]").inner_text()
    assert workflow_site.description() == before

    # the image analysis stage links to the pipeline editor and names the project's modules
    tab(page, "stage", "image_analysis").click()
    link = page.locator("[data-testid=edit-pipeline]")
    assert link.get_attribute("href") == f"/experiments/{workflow_site.experiment_id}/pipeline"
    page.locator("[data-testid=pipeline-panel]", has_text="register_blobs").wait_for(
        timeout=TIMEOUT_MS
    )


def test_failing_step_then_resubmit(workflow_page, workflow_site) -> None:
    page = workflow_page
    open_step(page, "image_conversion", "metaconfig")
    argument(page, "batch_args", "regex").locator("input").fill(BAD_REGEX)
    argument(page, "submission_args", "memory").locator("input").fill("3000")
    assert page.locator("[data-testid=unsaved]").is_visible()
    page.click("[data-testid=save]")
    page.locator("[data-testid=workflow-notice]", has_text="Saved").wait_for(timeout=TIMEOUT_MS)
    stored = workflow_site.description()
    assert argument_value(stored, "metaconfig", "batch_args", "regex") == BAD_REGEX
    assert argument_value(stored, "metaconfig", "submission_args", "memory") == 3000

    page.click("[data-testid=submit]")
    page.locator("[data-testid=submit-dialog]").wait_for(timeout=TIMEOUT_MS)
    page.click("[data-testid=confirm-submit]")
    page.locator("[data-testid=submit-dialog]").wait_for(state="detached", timeout=TIMEOUT_MS)

    # the page polls: the step turns failed and the bars red, without a reload
    page.locator("[data-testid=step-tab][data-name=metaconfig][data-state=failed]").wait_for(
        timeout=RUN_TIMEOUT_MS
    )
    wait_state(page, "TERMINATED")
    assert tab(page, "stage", "image_conversion").get_attribute("data-state") == "failed"
    for bar in ("workflow-progress", "stage-progress", "step-progress"):
        assert page.locator(f"[data-testid={bar}]").get_attribute("data-failed") == "true", bar
    assert button_states(page) == {"submit": True, "resume": True, "resubmit": True, "kill": False}

    # the failed job's log says why
    failed = page.locator("[data-testid=job-row][data-failed=true]").first
    failed.wait_for(timeout=TIMEOUT_MS)
    failed.locator("[data-testid=job-log]").click()
    dialog = page.locator("[data-testid=job-log-dialog]")
    dialog.locator("[data-testid=log-stderr]").wait_for(timeout=TIMEOUT_MS)
    log = dialog.inner_text()
    assert "regex" in log.lower() or "pattern" in log.lower() or "error" in log.lower(), log
    dialog.locator("button", has_text="Close").click()

    # repair the argument (blank: the microscope type's pattern) and resubmit the stage
    argument(page, "batch_args", "regex").locator("input").fill("")
    page.click("[data-testid=save]")
    page.locator("[data-testid=workflow-notice]", has_text="Saved").wait_for(timeout=TIMEOUT_MS)
    assert argument_value(workflow_site.description(), "metaconfig", "batch_args", "regex") is None
    page.click("[data-testid=resubmit]")
    dialog = page.locator("[data-testid=resubmit-dialog]")
    dialog.wait_for(timeout=TIMEOUT_MS)
    dialog.locator("[data-testid=resubmit-stage]").select_option("image_conversion")
    dialog.locator("[data-testid=confirm-resubmit]").click()
    dialog.wait_for(state="detached", timeout=TIMEOUT_MS)

    # while it runs: Submit, Resume and Resubmit off, Kill on (unless it ended already)
    state = page.locator("[data-testid=workflow-state]").get_attribute("data-state")
    if state in ("RUNNING", "NEW", "SUBMITTED"):
        assert button_states(page) == {
            "submit": False,
            "resume": False,
            "resubmit": False,
            "kill": True,
        }

    for stage in ("image_conversion", "image_preprocessing", "pyramid_creation", "image_analysis"):
        page.locator(f"[data-testid=stage-tab][data-name={stage}][data-state=done]").wait_for(
            timeout=RUN_TIMEOUT_MS
        )
    wait_state(page, "TERMINATED")
    bar = page.locator("[data-testid=workflow-progress]")
    assert bar.get_attribute("data-failed") == "false"
    assert bar.get_attribute("aria-valuenow") == "100"
    assert button_states(page) == {"submit": True, "resume": True, "resubmit": True, "kill": False}

    # a job's log of the analysis stage
    open_step(page, "image_analysis", "jterator")
    rows = page.locator("[data-testid=jobs][data-step=jterator] [data-testid=job-row]")
    rows.first.wait_for(timeout=TIMEOUT_MS)
    assert rows.count() == int(page.locator("[data-testid=jobs-count]").inner_text().split()[0])
    rows.first.locator("[data-testid=job-log]").click()
    dialog = page.locator("[data-testid=job-log-dialog]")
    dialog.locator("[data-testid=log-stdout]").wait_for(timeout=TIMEOUT_MS)
    assert "Log of jterator" in dialog.inner_text()
    dialog.locator("button", has_text="Close").click()

    # the state filter
    page.select_option("[data-testid=jobs-filter]", "failed")
    page.locator("[data-testid=jobs-count]", has_text="0 of").wait_for(timeout=TIMEOUT_MS)
    page.select_option("[data-testid=jobs-filter]", "ok")
    page.locator("[data-testid=jobs-count]", has_text=f"{rows.count()} of").wait_for(
        timeout=TIMEOUT_MS
    )


def test_submit_while_running_and_kill(workflow_page, workflow_site) -> None:
    page = workflow_page
    wait_state(page, "TERMINATED", TIMEOUT_MS)
    assert enabled(page, "submit")
    # another client starts the analysis stage; the page has not polled yet
    started = workflow_site.call(
        "POST", "/workflow/resubmit", json={"stage_name": "image_analysis"}
    )
    assert started.status_code == 200, started.text
    page.click("[data-testid=submit]")
    page.click("[data-testid=confirm-submit]")
    dialog = page.locator("[data-testid=submit-dialog]")
    error = dialog.locator(".error")
    error.wait_for(timeout=TIMEOUT_MS)
    assert "still running" in error.inner_text()
    dialog.locator("button", has_text="Cancel").click()
    # the page learns it runs: Kill on, Submit off
    page.locator("[data-testid=kill]:not([disabled])").wait_for(timeout=TIMEOUT_MS)
    assert not enabled(page, "submit")
    page.click("[data-testid=kill]")
    wait_state(page, "TERMINATED", RUN_TIMEOUT_MS)
    assert enabled(page, "submit") and not enabled(page, "kill")
    status = workflow_site.wait_until_ended()
    if status["exitcode"] or status["failed"]:  # the kill came before the stage ended
        bar = page.locator("[data-testid=workflow-progress]")
        assert bar.get_attribute("data-failed") == "true"
