"""The upload screen in a real browser against a live server: plates and acquisitions, a
simulated plate uploaded through the page, a reload half-way and the resumed upload, refused
names, a dropped connection and its retry.

The server runs on an installation of its own (SQLite, one user, no processing); each test
makes its own experiment through the API. The only stubs are ``page.route`` handlers that hold
or drop microscope-file requests in the browser (a reload half-way, a lost connection).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from .synthetic import Installation, served_installation, simulate_plate
from .ui import TIMEOUT_MS, start_session

USER = "uploader"
PASSWORD = "upload-pw"
#: the simulated plate: 2 wells x 2 sites x 2 channels of 64x64 pixels (cellvoyager)
SIMULATION = ("--microscope", "cellvoyager", "--plate-format", "96", "--wells", "2",
              "--sites", "2", "--channels", "2", "--size", "64x64")  # fmt: skip
#: files sent before the page is reloaded (the next ones are held in flight)
BEFORE_RELOAD = 3


#: the live server on an installation with the one user (see synthetic.served_installation)
UploadSite = Installation


@pytest.fixture(scope="module")
def upload_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UploadSite]:
    with served_installation(tmp_path_factory.mktemp("upload_site"), {USER: PASSWORD}) as site:
        yield site


@pytest.fixture(scope="module")
def plate_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A simulated plate (images, metadata and a ground_truth folder the server refuses)."""
    return simulate_plate(tmp_path_factory.mktemp("sim") / "plate", *SIMULATION)


def microscope_files(directory: Path) -> dict[str, Path]:
    """The plate's own files (not the ground truth): name -> path."""
    return {p.name: p for p in sorted(directory.iterdir()) if p.is_file()}


def new_experiment(site: UploadSite, name: str) -> int:
    payload = {"name": name, "microscope_type": "cellvoyager", "plate_format": 96}
    return int(site.call("POST", "/api/experiments", json=payload)["data"]["id"])


def new_acquisition(site: UploadSite, experiment_id: int, plate: str, name: str) -> int:
    base = f"/api/experiments/{experiment_id}"
    site.call("POST", f"{base}/plates", json={"name": plate})
    answer = site.call("POST", f"{base}/acquisitions", json={"plate_name": plate, "name": name})
    return int(answer["data"]["id"])


def open_upload(page, site: UploadSite, experiment_id: int, acquisition_id=None) -> None:
    start_session(page, site, USER)
    query = f"?acquisition={acquisition_id}" if acquisition_id is not None else ""
    page.goto(f"{site.base_url}/experiments/{experiment_id}/upload{query}")
    page.locator("[data-testid=upload-screen]").wait_for(timeout=TIMEOUT_MS)


def row(page, name: str):
    return page.locator(f"[data-testid=file-row][data-name='{name}']")


def count(page, state: str) -> int:
    chip = page.locator(f"[data-testid=count-{state}]")
    return int(chip.inner_text()) if chip.count() else 0


def wait_count(page, state: str, n: int) -> None:
    page.wait_for_function(
        """([state, n]) => {
            const chip = document.querySelector(`[data-testid=count-${state}]`);
            return (chip ? Number(chip.textContent) : 0) === n;
        }""",
        arg=[state, n],
        timeout=TIMEOUT_MS,
    )


def pick_folder(page, directory: Path) -> None:
    page.locator("[data-testid=folder-input]").set_input_files(str(directory))


def stored_files(site: UploadSite, experiment_id: int) -> dict[str, list[Path]]:
    """Every file under the experiment's directory, by name (hidden temporaries included)."""
    location = site.home / "experiments" / f"experiment_{experiment_id}"
    found: dict[str, list[Path]] = {}
    for path in location.rglob("*"):
        if path.is_file() and "microscope" in str(path.parent):
            found.setdefault(path.name, []).append(path)
    return found


def assert_all_arrived_once(site: UploadSite, experiment_id: int, acquisition_id: int,
                            originals: dict[str, Path]) -> None:  # fmt: skip
    base = f"/api/experiments/{experiment_id}/acquisitions/{acquisition_id}"
    listed = (
        site.call("GET", f"{base}/images")["data"] + site.call("GET", f"{base}/metadata")["data"]
    )
    names = [f["name"] for f in listed]
    assert sorted(names) == sorted(originals), names
    assert {f["status"] for f in listed} == {"COMPLETE"}, listed
    assert site.call("GET", f"{base}/upload/count")["data"] == len(originals)
    stored = stored_files(site, experiment_id)
    assert sorted(stored) == sorted(originals), sorted(stored)  # no .part leftovers either
    for name, original in originals.items():
        (path,) = stored[name]
        assert path.read_bytes() == original.read_bytes(), name


def test_upload_a_plate_reload_half_way_and_resume(
    page, upload_site, plate_dir, browser_artifacts
) -> None:
    site = upload_site
    experiment_id = new_experiment(site, "upload-resume")
    originals = microscope_files(plate_dir)
    assert len(originals) == 10  # 8 images, 2 metadata files
    open_upload(page, site, experiment_id)
    page.locator("[data-testid=experiment-nav] [data-testid=tab-upload].active").wait_for()
    page.locator("[data-testid=no-plates]").wait_for(timeout=TIMEOUT_MS)

    # a plate and an acquisition through the page
    page.click("[data-testid=add-plate]")
    page.fill("[data-testid=create-plate-dialog] [data-testid=name-input]", "P1")
    page.click("[data-testid=create-plate-dialog] [data-testid=create-submit]")
    plate = page.locator("[data-testid=plate-row][data-name=P1]")
    plate.wait_for(timeout=TIMEOUT_MS)
    plate.locator("[data-testid=add-acquisition]").click()
    page.fill("[data-testid=create-acquisition-dialog] [data-testid=name-input]", "A1")
    page.click("[data-testid=create-acquisition-dialog] [data-testid=create-submit]")
    acquisition = plate.locator("[data-testid=acquisition-row][data-name=A1]")
    acquisition.wait_for(timeout=TIMEOUT_MS)
    assert "not ready" in acquisition.locator("[data-testid=status]").inner_text()
    acquisition_id = int(acquisition.get_attribute("data-id"))
    acquisition.locator("[data-testid=open-acquisition]").click()
    page.wait_for_url(f"**/upload?acquisition={acquisition_id}", timeout=TIMEOUT_MS)
    page.locator("[data-testid=acquisition-name]", has_text="A1").wait_for(timeout=TIMEOUT_MS)

    # the first files go through, the next ones are held in flight: then the page reloads
    sent: list[str] = []
    held: list[object] = []

    def hold_after_some(route) -> None:
        name = re.search(rb'filename="([^"]+)"', route.request.post_data_buffer or b"")
        sent.append(name.group(1).decode() if name else "?")
        if len(sent) <= BEFORE_RELOAD:
            route.continue_()
        else:
            held.append(route)  # never answered: the request stays in flight

    page.route("**/microscope-file", hold_after_some)
    pick_folder(page, plate_dir)
    wait_count(page, "ready", len(originals))
    # the ground truth (csv, json, label images) is refused, each with its reason
    refused = page.locator("[data-testid=refused-row]")
    assert refused.count() == len(list((plate_dir / "ground_truth").iterdir()))
    reason = page.locator("[data-testid=refused-row][data-name='cells.csv']").inner_text()
    assert "not a cellvoyager image or metadata file" in reason, reason
    page.click("[data-testid=start-upload]")
    wait_count(page, "complete", BEFORE_RELOAD)
    wait_count(page, "uploading", 4)  # 4 at once: the held ones
    assert count(page, "waiting") == len(originals) - BEFORE_RELOAD - 4
    rate = page.locator("[data-testid=rate]").inner_text()
    assert re.fullmatch(r"\d+\.\d MB/s", rate), rate
    page.screenshot(path=str(browser_artifacts / "test_upload.mid_upload.png"))
    done_before = set(sent[:BEFORE_RELOAD])

    page.on("dialog", lambda dialog: dialog.accept())  # "leave the page?" while uploading
    page.reload()
    page.unroute("**/microscope-file", hold_after_some)
    for route in held:
        with contextlib.suppress(Exception):
            route.abort()
    page.locator("[data-testid=server-count]", has_text=str(BEFORE_RELOAD)).wait_for(
        timeout=TIMEOUT_MS
    )

    # the same folder again: only the missing files go up
    requests: list[str] = []
    page.on(
        "request",
        lambda request: requests.append(request.url) if "microscope-file" in request.url else None,
    )
    pick_folder(page, plate_dir)
    wait_count(page, "ready", len(originals))
    page.click("[data-testid=start-upload]")
    wait_count(page, "complete", len(originals) - BEFORE_RELOAD)
    wait_count(page, "skipped", BEFORE_RELOAD)
    assert len(requests) == len(originals) - BEFORE_RELOAD
    for name in done_before:
        assert row(page, name).get_attribute("data-state") == "skipped", name
    page.locator("[data-testid=server-count]", has_text=str(len(originals))).wait_for(
        timeout=TIMEOUT_MS
    )
    assert "100 %" in page.locator("[data-testid=overall-progress]").inner_text()
    assert_all_arrived_once(site, experiment_id, acquisition_id, originals)

    # back on the list: the acquisition and the plate are ready, with their file counts
    page.click("[data-testid=back-to-plates]")
    acquisition.locator("[data-testid=file-count]", has_text=str(len(originals))).wait_for(
        timeout=TIMEOUT_MS
    )
    assert acquisition.locator("[data-testid=status]").inner_text() == "ready for processing"
    status = plate.locator("header [data-testid=status]").inner_text()
    assert status == "ready for processing", status
    assert not page.page_errors, page.page_errors


def test_a_dropped_connection_fails_the_file_and_retry_sends_it(
    page, upload_site, plate_dir, browser_artifacts
) -> None:
    site = upload_site
    experiment_id = new_experiment(site, "upload-drop")
    acquisition_id = new_acquisition(site, experiment_id, "P1", "A1")
    originals = microscope_files(plate_dir)
    dropped: list[str] = []

    def drop_first(route) -> None:
        if not dropped:
            name = re.search(rb'filename="([^"]+)"', route.request.post_data_buffer or b"")
            dropped.append(name.group(1).decode())
            route.abort("connectionreset")
        else:
            route.continue_()

    open_upload(page, site, experiment_id, acquisition_id)
    page.route("**/microscope-file", drop_first)
    page.locator("[data-testid=file-input]").set_input_files([str(p) for p in originals.values()])
    wait_count(page, "ready", len(originals))
    page.click("[data-testid=start-upload]")
    wait_count(page, "complete", len(originals) - 1)
    wait_count(page, "failed", 1)
    failed = row(page, dropped[0])
    assert failed.get_attribute("data-state") == "failed"
    assert "Connection lost" in failed.locator("[data-testid=file-message]").inner_text()
    assert page.locator("[data-testid=failed-summary]").is_visible()
    page.screenshot(path=str(browser_artifacts / "test_upload.dropped_connection.png"))
    page.click("[data-testid=retry]")
    wait_count(page, "complete", len(originals))
    assert failed.get_attribute("data-state") == "complete"
    assert count(page, "failed") == 0
    assert_all_arrived_once(site, experiment_id, acquisition_id, originals)


def test_refused_names_are_listed_with_the_reason(page, upload_site, plate_dir) -> None:
    site = upload_site
    experiment_id = new_experiment(site, "upload-refused")
    acquisition_id = new_acquisition(site, experiment_id, "P1", "A1")
    image = next(p for p in microscope_files(plate_dir).values() if p.suffix == ".tif")
    open_upload(page, site, experiment_id, acquisition_id)
    page.locator("[data-testid=file-input]").set_input_files(
        [
            {"name": image.name, "mimeType": "image/tiff", "buffer": image.read_bytes()},
            {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"not an image"},
            {"name": ".DS_Store", "mimeType": "application/octet-stream", "buffer": b"\0"},
        ]
    )
    wait_count(page, "ready", 1)
    reasons = {
        r.get_attribute("data-name"): r.locator("[data-testid=refused-reason]").inner_text()
        for r in page.locator("[data-testid=refused-row]").all()
    }
    assert set(reasons) == {"notes.txt", ".DS_Store"}, reasons
    assert "not a cellvoyager image or metadata file" in reasons["notes.txt"]
    assert "must not start with '.'" in reasons[".DS_Store"]
    page.click("[data-testid=start-upload]")
    wait_count(page, "complete", 1)
    base = f"/api/experiments/{experiment_id}/acquisitions/{acquisition_id}"
    assert [f["name"] for f in site.call("GET", f"{base}/images")["data"]] == [image.name]
    assert site.call("GET", f"{base}/metadata")["data"] == []


def test_rename_and_delete_plates_and_acquisitions(page, upload_site) -> None:
    site = upload_site
    experiment_id = new_experiment(site, "upload-manage")
    new_acquisition(site, experiment_id, "P1", "A1")
    open_upload(page, site, experiment_id)
    nav = page.locator("[data-testid=experiment-nav]")
    nav.get_by_text("upload-manage").wait_for(timeout=TIMEOUT_MS)
    plate = page.locator("[data-testid=plate-row][data-name=P1]")
    plate.wait_for(timeout=TIMEOUT_MS)
    assert plate.locator("[data-testid=acquisition-count]").inner_text() == "1 acquisition"
    assert plate.locator("[data-testid=file-count]").inner_text() == "0"

    plate.locator("[data-testid=rename-plate]").click()
    page.locator("[data-testid=rename-input]").fill("Plate one")
    page.locator("[data-testid=rename-input]").press("Enter")
    renamed = page.locator("[data-testid=plate-row][data-name='Plate one']")
    renamed.wait_for(timeout=TIMEOUT_MS)
    renamed.locator("[data-testid=rename-acquisition]").click()
    page.locator("[data-testid=rename-input]").fill("First")
    page.locator("[data-testid=rename-input]").press("Enter")
    renamed.locator("[data-testid=acquisition-row][data-name=First]").wait_for(timeout=TIMEOUT_MS)
    base = f"/api/experiments/{experiment_id}"
    (stored,) = site.call("GET", f"{base}/plates")["data"]
    assert stored["name"] == "Plate one" and stored["acquisitions"][0]["name"] == "First"

    # a name taken twice: the server's message, on the page
    page.click("[data-testid=add-plate]")
    page.fill("[data-testid=create-plate-dialog] [data-testid=name-input]", "Plate one")
    page.click("[data-testid=create-plate-dialog] [data-testid=create-submit]")
    page.locator("[data-testid=create-plate-dialog] [role=alert]").wait_for(timeout=TIMEOUT_MS)
    page.keyboard.press("Escape")

    # delete asks first; Cancel keeps it
    renamed.locator("[data-testid=delete-acquisition]").click()
    page.locator("[data-testid=delete-dialog]").get_by_text("Cancel").click()
    assert len(site.call("GET", f"{base}/acquisitions")["data"]) == 1
    renamed.locator("[data-testid=delete-acquisition]").click()
    page.click("[data-testid=delete-dialog] [data-testid=confirm-delete]")
    renamed.get_by_text("No acquisitions yet").wait_for(timeout=TIMEOUT_MS)
    assert site.call("GET", f"{base}/acquisitions")["data"] == []
    renamed.locator("[data-testid=delete-plate]").click()
    page.click("[data-testid=delete-dialog] [data-testid=confirm-delete]")
    page.locator("[data-testid=no-plates]").wait_for(timeout=TIMEOUT_MS)
    assert site.call("GET", f"{base}/plates")["data"] == []


def test_an_unreachable_server_is_reported_on_the_upload_page(page, upload_site) -> None:
    site = upload_site
    experiment_id = new_experiment(site, "upload-offline")
    start_session(page, site, USER)
    page.route("**/plates", lambda route: route.abort("connectionrefused"))
    page.goto(f"{site.base_url}/experiments/{experiment_id}/upload")
    error = page.locator("main [role=alert]")
    error.wait_for(timeout=TIMEOUT_MS)
    assert "cannot be reached" in error.inner_text()


def test_cancel_stops_the_upload_and_retry_resumes_it(page, upload_site, plate_dir) -> None:
    site = upload_site
    experiment_id = new_experiment(site, "upload-cancel")
    acquisition_id = new_acquisition(site, experiment_id, "P1", "A1")
    originals = microscope_files(plate_dir)
    held: list[object] = []
    open_upload(page, site, experiment_id, acquisition_id)

    def hold(route) -> None:
        held.append(route)  # every file stays in flight

    page.route("**/microscope-file", hold)
    pick_folder(page, plate_dir)
    wait_count(page, "ready", len(originals))
    page.click("[data-testid=start-upload]")
    wait_count(page, "uploading", 4)
    page.click("[data-testid=cancel]")
    wait_count(page, "cancelled", len(originals))
    assert page.locator("[data-testid=cancel]").is_disabled()
    page.unroute("**/microscope-file", hold)
    for route in held:
        with contextlib.suppress(Exception):
            route.abort()
    page.click("[data-testid=retry]")
    wait_count(page, "complete", len(originals))
    assert_all_arrived_once(site, experiment_id, acquisition_id, originals)


def test_files_dropped_on_the_drop_zone_are_added(page, upload_site, plate_dir) -> None:
    site = upload_site
    experiment_id = new_experiment(site, "upload-drop-zone")
    acquisition_id = new_acquisition(site, experiment_id, "P1", "A1")
    metadata = [p for p in microscope_files(plate_dir).values() if p.suffix != ".tif"]
    open_upload(page, site, experiment_id, acquisition_id)
    transfer = page.evaluate_handle(
        """(files) => {
            const transfer = new DataTransfer();
            for (const [name, text] of files) transfer.items.add(new File([text], name));
            return transfer;
        }""",
        [[p.name, p.read_text()] for p in metadata] + [["readme.md", "# not a microscope file"]],
    )
    page.dispatch_event("[data-testid=dropzone]", "drop", {"dataTransfer": transfer})
    wait_count(page, "ready", len(metadata))
    assert page.locator("[data-testid=refused-row][data-name='readme.md']").count() == 1
    page.click("[data-testid=start-upload]")
    wait_count(page, "complete", len(metadata))
    base = f"/api/experiments/{experiment_id}/acquisitions/{acquisition_id}"
    names = [f["name"] for f in site.call("GET", f"{base}/metadata")["data"]]
    assert sorted(names) == sorted(p.name for p in metadata)


def test_many_files_draw_a_bounded_list_of_bars_that_do_not_animate(
    page, upload_site, tmp_path
) -> None:
    """400 files: 300 rows are drawn, the counts say how many there are; the progress bars
    are redrawn as files move, without a CSS transition of their width (which kept the page
    laying out and compositing every frame during an upload, slowing it down)."""
    site = upload_site
    experiment_id = new_experiment(site, "upload-many")
    acquisition_id = new_acquisition(site, experiment_id, "P1", "A1")
    folder = tmp_path / "many"
    folder.mkdir()
    n = 400
    for i in range(n):
        name = f"many_A01_T0001F{i % 100 + 1:03d}L01A01Z01C{i // 100 + 1:02d}.tif"
        (folder / name).write_bytes(b"II*\0" + i.to_bytes(4, "little"))
    open_upload(page, site, experiment_id, acquisition_id)
    pick_folder(page, folder)
    wait_count(page, "ready", n)
    assert page.locator("[data-testid=file-row]").count() == 300
    assert page.get_by_text(f"300 of {n} shown").is_visible()
    page.click("[data-testid=start-upload]")
    page.locator("[data-testid=upload-summary] .progress").wait_for(timeout=TIMEOUT_MS)
    durations = page.eval_on_selector_all(
        ".progress > div", "bars => bars.map((b) => getComputedStyle(b).transitionDuration)"
    )
    assert durations and set(durations) == {"0s"}, set(durations)
    wait_count(page, "complete", n)
    base = f"/api/experiments/{experiment_id}/acquisitions/{acquisition_id}"
    assert site.call("GET", f"{base}/upload/count")["data"] == n
    assert not page.page_errors, page.page_errors
