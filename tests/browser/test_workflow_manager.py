"""The workflow manager (``/experiments/<id>/workflow``) in a real browser against the real server.

A small experiment of its own (one well, one 64x64 site, one channel, registered with
``tm_add`` and not processed) is served by a live tm_server. The tests run in order on it:

1. the page before any submission: widgets by the declared types, help, defaults, ranges,
   button states, refused values;
2. a step made to fail on purpose (metaconfig's ``regex`` set to a pattern that does not
   compile: the server stores any text, the step's job fails), its red bars and log, then the
   argument repaired and the stage resubmitted from the page: every stage turns done;
3. a submit while a workflow runs (409; the on/off switches are locked), and Kill;
4. a step and a stage switched off and on with their tab's checkbox, saved, still off after
   a reload;
5. a step of 10,000 jobs (another experiment, rows put into the database): the jobs table
   keeps a window of rows in the DOM, scrolls smoothly to the last job and filters by state
   on the server.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from .synthetic import (
    register_tiff_experiment,
    run_program,
    served_installation,
    write_pipeline,
)
from .ui import TIMEOUT_MS, start_session

#: a whole workflow of one small site, on a busy 2-core machine
RUN_TIMEOUT_MS = 300_000
USER, PASSWORD = "wendy", "wendy-secret"
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
    #: the environment of the installation's programs (its database, its home)
    environ: dict[str, str]

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
    root = tmp_path_factory.mktemp("workflow_site")
    write_plate(root / "microscope")
    with served_installation(root, {USER: PASSWORD}) as installation:
        environ = installation.environ
        experiment_id = register_tiff_experiment(environ, "small", root / "microscope", USER)
        location = (
            installation.home / "experiments" / f"experiment_{experiment_id}" / "workflow"
        ) / "jterator"
        write_pipeline(location, pipeline=PIPELINE, channels=("c0",), object_type="Blobs")
        site = WorkflowSite(
            installation.base_url, experiment_id, installation.server, {USER: PASSWORD}, environ
        )
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


#: whether the page shows a running workflow (Kill on), and how many on/off switches it has
#: and how many of them are locked
LOCKS_JS = """() => {
  const switches = [
    ...document.querySelectorAll('[data-testid=stage-active], [data-testid=step-active]'),
  ];
  return {
    running: !document.querySelector('[data-testid=kill]').disabled,
    switches: switches.length,
    locked: switches.filter((s) => s.disabled).length,
  };
}"""


def switch(page, kind: str, name: str):
    return page.locator(f"[data-testid={kind}-active][data-name='{name}']")


def stage_active(description: dict, stage: str, step: str | None = None) -> bool:
    node = next(s for s in description["stages"] if s["name"] == stage)
    if step is not None:
        node = next(s for s in node["steps"] if s["name"] == step)
    return node["active"]


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
    assert memory.get_attribute("data-type") == "integer"
    assert "default: 2500" in memory.inner_text()
    # the server's range, on the number field and in the help
    field = memory.locator("input")
    assert field.get_attribute("type") == "number"
    assert (field.get_attribute("min"), field.get_attribute("max")) == ("1", "1048576")
    assert "between 1 and 1048576" in memory.inner_text()
    # the widget follows the declared type, not the value: n_vertical has no default
    rows = argument(page, "batch_args", "n_vertical")
    assert (rows.get_attribute("data-kind"), rows.get_attribute("data-type")) == (
        "number",
        "integer",
    )
    assert rows.locator("input").get_attribute("min") == "1"
    assert argument(page, "submission_args", "duration").get_attribute("data-kind") == "text"

    # values that are not of the type or out of range are refused in the page, with the
    # range named, and never reach the server
    before = workflow_site.description()
    error = memory.locator("[data-testid=argument-error]")
    for typed, reason in (
        ("0", "memory must be between 1 and 1048576, got 0"),
        ("2000000", "memory must be between 1 and 1048576, got 2000000"),
        ("2.5", "memory must be an integer"),
    ):
        field.fill(typed)
        assert reason in error.inner_text(), typed
        page.click("[data-testid=save]")
        assert "Not saved" in page.locator("[data-testid=workflow-error]").inner_text()
        assert workflow_site.description() == before
    # text the number field cannot read (the browser reports no value for it)
    field.fill("")
    field.press_sequentially("1e")
    assert "memory must be an integer" in error.inner_text()
    page.click("[data-testid=save]")
    assert "Not saved" in page.locator("[data-testid=workflow-error]").inner_text()
    assert workflow_site.description() == before
    field.fill("2500")  # the stored value again: nothing to save
    assert error.count() == 0
    assert not enabled(page, "save")

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

    # the state filter (the server filters: the rows go while it answers)
    n_jobs = rows.count()
    page.select_option("[data-testid=jobs-filter]", "FAILED")
    page.locator("[data-testid=jobs-count]", has_text=f"0 of {n_jobs}").wait_for(timeout=TIMEOUT_MS)
    assert rows.count() == 0
    page.select_option("[data-testid=jobs-filter]", "SUCCEEDED")
    page.locator("[data-testid=jobs-count]", has_text=f"{n_jobs} of {n_jobs}").wait_for(
        timeout=TIMEOUT_MS
    )
    assert rows.evaluate_all("r => r.every(e => e.dataset.failed === 'false')")


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
    # the page learns it runs: Kill on, Submit off, stages and steps locked on or off
    page.locator("[data-testid=kill]:not([disabled])").wait_for(timeout=TIMEOUT_MS)
    assert not enabled(page, "submit")
    # read in one go: the page renders synchronously, so kill and switches are of one status
    seen = page.evaluate(LOCKS_JS)
    if seen["running"]:  # not ended yet at this render
        assert seen["switches"] >= 5 and seen["locked"] == seen["switches"], seen
    page.click("[data-testid=kill]")
    wait_state(page, "TERMINATED", RUN_TIMEOUT_MS)
    assert enabled(page, "submit") and not enabled(page, "kill")
    status = workflow_site.wait_until_ended()
    if status["exitcode"] or status["failed"]:  # the kill came before the stage ended
        bar = page.locator("[data-testid=workflow-progress]")
        assert bar.get_attribute("data-failed") == "true"


def test_switch_steps_and_stages_off_and_on(workflow_page, workflow_site) -> None:
    page = workflow_page
    # switches are locked while a workflow runs: wait for the last one to end
    page.locator("[data-testid=stage-active]:not([disabled])").first.wait_for(
        timeout=RUN_TIMEOUT_MS
    )
    open_step(page, "image_conversion", "metaconfig")
    assert switch(page, "step", "metaconfig").is_checked()
    assert tab(page, "step", "metaconfig").get_attribute("data-active") == "true"

    # a step off: greyed at once, unsaved until Save
    switch(page, "step", "metaconfig").uncheck()
    assert tab(page, "step", "metaconfig").get_attribute("data-active") == "false"
    assert "inactive" in tab(page, "step", "metaconfig").get_attribute("class").split()
    assert page.locator("[data-testid=step-inactive]").is_visible()
    assert page.locator("[data-testid=unsaved]").is_visible()
    assert stage_active(workflow_site.description(), "image_conversion", "metaconfig")

    # a stage off: Submit's question no longer names it
    switch(page, "stage", "image_preprocessing").uncheck()
    assert tab(page, "stage", "image_preprocessing").get_attribute("data-active") == "false"
    page.click("[data-testid=submit]")
    dialog = page.locator("[data-testid=submit-dialog]")
    dialog.wait_for(timeout=TIMEOUT_MS)
    assert "image conversion, pyramid creation, image analysis" in dialog.inner_text()
    dialog.locator("button", has_text="Cancel").click()

    page.click("[data-testid=save]")
    page.locator("[data-testid=workflow-notice]", has_text="Saved").wait_for(timeout=TIMEOUT_MS)
    stored = workflow_site.description()
    assert not stage_active(stored, "image_conversion", "metaconfig")
    assert not stage_active(stored, "image_preprocessing")
    assert stage_active(stored, "image_conversion", "imextract")
    assert stage_active(stored, "image_conversion")

    # still off after a reload, greyed
    page.reload()
    page.locator("[data-testid=stage-tab]").first.wait_for(timeout=TIMEOUT_MS)
    open_step(page, "image_conversion", "metaconfig")
    assert not switch(page, "step", "metaconfig").is_checked()
    assert switch(page, "step", "imextract").is_checked()
    assert not switch(page, "stage", "image_preprocessing").is_checked()
    assert tab(page, "stage", "image_preprocessing").get_attribute("data-active") == "false"
    assert tab(page, "step", "metaconfig").get_attribute("data-active") == "false"

    # and on again
    switch(page, "step", "metaconfig").check()
    switch(page, "stage", "image_preprocessing").check()
    page.click("[data-testid=save]")
    page.locator("[data-testid=workflow-notice]", has_text="Saved").wait_for(timeout=TIMEOUT_MS)
    stored = workflow_site.description()
    assert stage_active(stored, "image_conversion", "metaconfig")
    assert stage_active(stored, "image_preprocessing")


# ------------------------------------------------------------------- a step of 10,000 jobs

N_JOBS = 10_000
#: a workflow submission of an experiment as the engine stores it (the library's own tree),
#: every job ended well, then N run jobs of metaextract put in: every 10th failed, its node
#: lost (as the SLURM backend records it)
MANY_JOBS_SCRIPT = """
import sys
import sqlalchemy as sa
import tmlib.models as tm
from tmlib.workflow import manager
from tmlib.workflow.jobs.engine import persist

experiment_id, n = int(sys.argv[1]), int(sys.argv[2])
tree = manager.workflow_tree(experiment_id, manager.load_description(experiment_id))
with tm.utils.MainSession() as session:
    ref = session.get(tm.ExperimentReference, experiment_id)
    submission = tm.Submission(program="workflow", experiment_id=experiment_id, user_id=ref.user_id)
    session.add(submission)
    persist(session, submission, tree)
    session.execute(
        sa.update(tm.Task).where(tm.Task.submission_id == submission.id)
        .values(state="TERMINATED", exitcode=0, time=1.0, memory=10.0)
    )
    phase = session.scalar(sa.select(tm.Task).where(
        tm.Task.submission_id == submission.id, tm.Task.name == "metaextract_run"))
    phase.data = {**phase.data, "expanded": True}
    rows = [
        {"name": f"metaextract_run_{i:07d}", "type": "RunJob", "is_collection": False,
         "parent_id": phase.id, "submission_id": submission.id, "state": "TERMINATED",
         "exitcode": -9 if i % 10 == 0 else 0, "time": i / 100, "memory": 50.0,
         "data": {"node": "n2", "reason": "node n2 was lost while the job ran (node down*)"}
                 if i % 10 == 0 else {"node": "n1"}}
        for i in range(1, n + 1)
    ]
    session.execute(sa.insert(tm.Task), rows)
    print(submission.id)
"""

#: scroll the jobs table from top to bottom in `steps` frames; the longest frame (ms) and the
#: most row elements seen in the DOM at once
SCROLL_JS = """async (steps) => {
  const scroller = document.querySelector('[data-testid=jobs-scroller]');
  const end = scroller.scrollHeight - scroller.clientHeight;
  const frame = () => new Promise((resolve) => requestAnimationFrame(resolve));
  await frame();
  let last = performance.now();
  const frames = [];
  let rows = 0;
  for (let i = 1; i <= steps; i++) {
    scroller.scrollTop = Math.round((end * i) / steps);
    await frame();
    const now = performance.now();
    frames.push(now - last);
    last = now;
    rows = Math.max(rows, scroller.querySelectorAll('.wf-job-row').length);
  }
  frames.sort((a, b) => a - b);
  const longest = frames[frames.length - 1];
  const median = frames[Math.floor(frames.length / 2)];
  return { longest, median, rows, frames: steps, end };
}"""


def jobs_requests(page) -> list[str]:
    """The jobs-route URLs the page asks for from now on (a list that grows)."""
    seen: list[str] = []
    page.on("request", lambda r: seen.append(r.url) if "/workflow/jobs?" in r.url else None)
    return seen


def test_ten_thousand_jobs_scroll_smoothly(page, workflow_site) -> None:
    started = time.monotonic()
    environ = workflow_site.environ
    experiment_id = int(
        run_program(environ, "tm_add", "experiment", "-e", "many_jobs", "-u", USER,
                    "--microscope-type", "tiff", "--plate-format", "96").strip()
    )  # fmt: skip
    run_program(environ, "python", "-c", MANY_JOBS_SCRIPT, experiment_id, N_JOBS)
    last_name = f"metaextract_run_{N_JOBS:07d}"

    start_session(page, workflow_site, USER)
    page.goto(f"{workflow_site.base_url}/experiments/{experiment_id}/workflow")
    open_step(page, "image_conversion", "metaextract")
    table = page.locator("[data-testid=jobs][data-step=metaextract]")
    scroller = table.locator("[data-testid=jobs-scroller]")
    rows = scroller.locator("[data-testid=job-row]")
    rows.first.wait_for(timeout=TIMEOUT_MS)
    count = table.locator("[data-testid=jobs-count]")
    total = int(count.get_attribute("data-total"))
    assert total >= N_JOBS + 1  # the init job, the run jobs, metaextract's collect job if any

    # scrolled to the end frame by frame: a window of rows, short frames, the last job shown
    requests = jobs_requests(page)
    scrolled = page.evaluate(SCROLL_JS, 120)
    assert scrolled["end"] > 0
    assert 0 < scrolled["rows"] < 200
    assert scrolled["longest"] < 250, scrolled
    scroller.locator(f"[data-testid=job-row][data-name='{last_name}']").wait_for(timeout=TIMEOUT_MS)
    last_row = rows.last
    assert last_row.get_attribute("data-name") == last_name
    assert int(last_row.get_attribute("data-index")) == total - 1
    assert last_row.is_visible()
    assert scroller.locator(".wf-job-row").count() < 200
    # a fling fetches where it comes to rest, not the 200 pages it passes
    assert 0 < len(requests) < 60, len(requests)
    print(f"\n10,000 jobs: longest frame {scrolled['longest']:.0f} ms (median "
          f"{scrolled['median']:.0f} ms) over {scrolled['frames']} frames, at most "
          f"{scrolled['rows']} rows in the DOM, {len(requests)} page requests at rest")  # fmt: skip

    # the state filter asks the server for the failed jobs only
    requests.clear()
    page.select_option("[data-testid=jobs-filter]", "FAILED")
    count.filter(has_text=f"{N_JOBS // 10} of {total}").wait_for(timeout=TIMEOUT_MS)
    rows.first.wait_for(timeout=TIMEOUT_MS)
    assert rows.evaluate_all("r => r.every(e => e.dataset.failed === 'true')")
    assert rows.first.get_attribute("data-name") == "metaextract_run_0000010"
    assert all("state=FAILED" in url for url in requests) and len(requests) <= 4, requests
    # why it failed, where the scheduler said so: on the row and in its log dialog
    first = rows.first
    assert first.get_attribute("title") == "node n2 was lost while the job ran (node down*)"
    first.locator("[data-testid=job-log]").click()
    dialog = page.locator("[data-testid=job-log-dialog]")
    dialog.locator("[data-testid=job-reason]").wait_for(timeout=TIMEOUT_MS)
    assert "node n2 was lost" in dialog.locator("[data-testid=job-reason]").inner_text()
    assert "exit code -9, on node n2" in dialog.inner_text()
    dialog.locator("button", has_text="Close").click()
    filtered = page.evaluate(SCROLL_JS, 30)
    assert filtered["rows"] < 200
    scroller.locator(f"[data-testid=job-row][data-name='{last_name}']").wait_for(timeout=TIMEOUT_MS)
    assert int(rows.last.get_attribute("data-index")) == N_JOBS // 10 - 1
    # back to every job
    page.select_option("[data-testid=jobs-filter]", "")
    count.filter(has_text=f"{total} jobs").wait_for(timeout=TIMEOUT_MS)
    assert scroller.locator("[data-testid=job-row]").first.get_attribute("data-index") == "0"
    assert time.monotonic() - started < 120
