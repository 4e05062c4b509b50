"""``TmClient``: the REST API of a TissueMAPS server as Python methods.

Objects are addressed by name, as users know them; the client resolves names
to ids through the list routes (``?name=``) and caches them.

Examples
--------
>>> client = TmClient("localhost", 5002, "alice", "secret", experiment_name="screen")
>>> client.upload_microscope_files("plate01", "acq01", "/data/plate01", parallel=4)
>>> client.submit_workflow()
>>> image = client.download_channel_image("wavelength-1", "plate01", "A01", 0, 0)
>>> values = client.download_feature_values("Cells")
"""

from __future__ import annotations

import base64
import io
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tmclient.base import HttpClient, TmClientError
from tmlib.lazy import lazy_import
from tmlib.progress import Progress

if TYPE_CHECKING:
    import pandas as pd

np = lazy_import("numpy")
yaml = lazy_import("yaml")

# pandas and OpenCV are imported where they are used: a command line that only
# lists plates should not pay for them

logger = logging.getLogger(__name__)

#: target formats of ``upload_microscope_files(convert=...)``
CONVERT_FORMATS = ("tif", "tiff", "jpg", "jpeg", "png")
#: files that conversion rewrites (everything else, e.g. metadata, is sent as it is)
_IMAGE_SUFFIXES = {".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp"}
#: a few colours that colour-blind readers tell apart (Okabe & Ito), as BGR
_PALETTES = {
    "colorblind": [
        (0, 159, 230),
        (233, 180, 86),
        (115, 158, 0),
        (66, 228, 240),
        (178, 114, 0),
        (0, 94, 213),
        (167, 121, 204),
    ]
}


class InputError(TmClientError):
    """Bad local input (a missing file, a wrong format): counts as bad usage."""

    def __init__(self, message: str) -> None:
        super().__init__(None, message, "InputError")

    @property
    def is_client_error(self) -> bool:
        return True


def _attachment_name(response: Any, default: str) -> str:
    """The file name of a ``Content-Disposition: attachment`` header (base name only)."""
    header = response.headers.get("Content-Disposition", "")
    match = re.search(r'filename\*?=(?:UTF-8\'\')?"?([^";]+)"?', header)
    name = os.path.basename(match.group(1).strip()) if match else ""
    return name or default


def _stream_to_file(response: Any, target: Path, progress: bool = False) -> Path:
    """Write a streamed response to `target` through a temporary name (no partial files).

    With `progress`, the bytes received are shown on a terminal as they come.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.part")
    length = response.headers.get("Content-Length", "")
    bar = Progress("download", 1, int(length) if length.isdigit() else None, enabled=progress)
    try:
        with open(tmp, "wb") as fh:
            for chunk in response.iter_content(chunk_size=1 << 16):
                fh.write(chunk)
                bar.advance(0, len(chunk))
        os.replace(tmp, target)
        bar.advance(1)
    finally:
        bar.close()
        response.close()
        tmp.unlink(missing_ok=True)
    return target


def _read_body(response: Any, progress: bool = False) -> bytes:
    """The whole body of a streamed response; with `progress`, the bytes as they come."""
    length = response.headers.get("Content-Length", "")
    chunks = []
    with Progress(
        "download", 1, int(length) if length.isdigit() else None, enabled=progress
    ) as bar:
        try:
            for chunk in response.iter_content(chunk_size=1 << 16):
                chunks.append(chunk)
                bar.advance(0, len(chunk))
        finally:
            response.close()
        bar.advance(1)
    return b"".join(chunks)


def _existing_file(filename: str | os.PathLike) -> Path:
    """`filename` with ``~`` expanded; an InputError when it is no regular file."""
    path = Path(filename).expanduser()
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    return path


def _json_number(value: Any) -> Any:
    # JSON has no NaN: missing values go as null
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


class TmClient(HttpClient):
    """A client of one TissueMAPS server, optionally bound to one experiment.

    Parameters
    ----------
    host : str
        Server name or address.
    port : int
        Server port (HTTPS iff 443).
    username, password : str
        Credentials (the client logs in on creation).
    experiment_name : str, optional
        The experiment every experiment-scoped method works on.
    ca_bundle : str, optional
        CA certificates for HTTPS.

    Raises
    ------
    TmClientError
        When the server cannot be reached or refuses the credentials.
    """

    def __init__(
        self,
        host: str,
        port: int,
        username: str,
        password: str,
        experiment_name: str | None = None,
        ca_bundle: str | None = None,
    ) -> None:
        super().__init__(host, port, username, password, ca_bundle=ca_bundle)
        self.experiment_name = experiment_name
        self._ids: dict[tuple, str] = {}

    # -- names to ids ---------------------------------------------------------

    def _find(self, key: tuple, path: str, what: str, name: str, **params: Any) -> str:
        """The id of the one object called `name` that ``GET path?name=...`` lists."""
        if key in self._ids:
            return self._ids[key]
        items = self._get(path, name=name, **params)["data"]
        # filter here too, so a route that ignores ?name= cannot pick a wrong object
        items = [item for item in items if item.get("name") == name]
        if not items:
            raise TmClientError(404, f"{what} {name!r} does not exist", "ResourceNotFoundError")
        if len(items) > 1:
            raise TmClientError(409, f"there are {len(items)} {what}s named {name!r}")
        self._ids[key] = str(items[0]["id"])
        return self._ids[key]

    def _forget(self, *prefix: Any) -> None:
        for key in [k for k in self._ids if k[: len(prefix)] == prefix]:
            del self._ids[key]

    @property
    def _experiment_id(self) -> str:
        if not self.experiment_name:
            raise InputError("no experiment given: set experiment_name")
        return self._find(
            ("experiment", self.experiment_name),
            "/api/experiments",
            "experiment",
            self.experiment_name,
        )

    def _e(self, path: str = "") -> str:
        """The API path `path` below the current experiment."""
        return f"/api/experiments/{self._experiment_id}{path}"

    def _plate_id(self, plate_name: str) -> str:
        return self._find(("plate", plate_name), self._e("/plates"), "plate", plate_name)

    def _acquisition_id(self, plate_name: str, acquisition_name: str) -> str:
        self._plate_id(plate_name)  # a clear message when the plate is wrong
        return self._find(
            ("acquisition", plate_name, acquisition_name),
            self._e("/acquisitions"),
            "acquisition",
            acquisition_name,
            plate_name=plate_name,
        )

    def _channel_id(self, channel_name: str) -> str:
        return self._find(("channel", channel_name), self._e("/channels"), "channel", channel_name)

    def _mapobject_type_id(self, name: str) -> str:
        return self._find(
            ("mapobject_type", name), self._e("/mapobject_types"), "object type", name
        )

    def _feature_id(self, mapobject_type_name: str, name: str) -> str:
        type_id = self._mapobject_type_id(mapobject_type_name)
        return self._find(
            ("feature", mapobject_type_name, name),
            self._e(f"/mapobject_types/{type_id}/features"),
            "feature",
            name,
        )

    # -- experiments ------------------------------------------------------------

    def get_experiments(self) -> list[dict]:
        """The caller's own and shared experiments: ``[{id, name, description, user}]``."""
        return self._get("/api/experiments")["data"]

    def create_experiment(
        self,
        workflow_type: str = "canonical",
        microscope_type: str = "cellvoyager",
        plate_format: int = 384,
        plate_acquisition_mode: str = "basic",
        description: str = "",
    ) -> dict:
        """Create the experiment named `experiment_name`, owned by the caller."""
        if not self.experiment_name:
            raise InputError("no experiment given: set experiment_name")
        data = self._post(
            "/api/experiments",
            {
                "name": self.experiment_name,
                "workflow_type": workflow_type,
                "microscope_type": microscope_type,
                "plate_format": int(plate_format),
                "plate_acquisition_mode": plate_acquisition_mode,
                "description": description,
            },
        )["data"]
        self._ids[("experiment", self.experiment_name)] = str(data["id"])
        return data

    def rename_experiment(self, new_name: str) -> None:
        """Rename the current experiment (and keep working on it)."""
        self._put(self._e(), {"name": new_name})
        experiment_id = self._experiment_id
        self._forget("experiment")
        self.experiment_name = new_name
        self._ids[("experiment", new_name)] = experiment_id

    def delete_experiment(self) -> None:
        """Delete the current experiment with all its data (owner only)."""
        self._delete(self._e())
        self._ids.clear()

    def share_experiment(self, user: str, write_access: bool = False) -> None:
        """Give `user` read (or read and write) access to the experiment (owner only)."""
        self._post(self._e("/shares"), {"user": user, "write_access": bool(write_access)})

    def get_shares(self) -> list[dict]:
        """Who the experiment is shared with: ``[{id, user, write_access}]`` (owner only)."""
        return self._get(self._e("/shares"))["data"]

    def unshare_experiment(self, user: str) -> None:
        """Withdraw `user`'s access to the experiment (owner only)."""
        self._delete(self._e("/shares"), user=user)

    def get_workflow_types(self) -> list[str]:
        return self._get("/api/workflow_types")["data"]

    def get_microscope_types(self) -> list[str]:
        return self._get("/api/microscope_types")["data"]

    # -- plates, acquisitions, wells, sites ---------------------------------------

    def get_plates(self) -> list[dict]:
        """Plates: ``[{id, name, description, acquisitions, status}]``."""
        return self._get(self._e("/plates"))["data"]

    def create_plate(self, name: str, description: str = "") -> dict:
        data = self._post(self._e("/plates"), {"name": name, "description": description})
        return data.get("data", data)

    def rename_plate(self, name: str, new_name: str) -> None:
        self._put(self._e(f"/plates/{self._plate_id(name)}"), {"name": new_name})
        self._forget("plate", name)
        self._forget("acquisition", name)

    def delete_plate(self, name: str) -> None:
        self._delete(self._e(f"/plates/{self._plate_id(name)}"))
        self._forget("plate", name)
        self._forget("acquisition", name)

    def get_acquisitions(self, plate_name: str | None = None) -> list[dict]:
        """Acquisitions: ``[{id, name, description, status, plate_name}]``."""
        return self._get(self._e("/acquisitions"), plate_name=plate_name)["data"]

    def create_acquisition(self, plate_name: str, name: str, description: str = "") -> dict:
        data = self._post(
            self._e("/acquisitions"),
            {"plate_name": plate_name, "name": name, "description": description},
        )
        return data.get("data", data)

    def rename_acquisition(self, plate_name: str, name: str, new_name: str) -> None:
        acquisition_id = self._acquisition_id(plate_name, name)
        self._put(self._e(f"/acquisitions/{acquisition_id}"), {"name": new_name})
        self._forget("acquisition", plate_name, name)

    def delete_acquisition(self, plate_name: str, name: str) -> None:
        acquisition_id = self._acquisition_id(plate_name, name)
        self._delete(self._e(f"/acquisitions/{acquisition_id}"))
        self._forget("acquisition", plate_name, name)

    def get_wells(self, plate_name: str | None = None) -> list[dict]:
        """Wells: ``[{id, name, description, plate_name, dimensions}]``."""
        return self._get(self._e("/wells"), plate_name=plate_name)["data"]

    def get_sites(self, plate_name: str | None = None, well_name: str | None = None) -> list[dict]:
        """Sites: ``[{id, y, x, height, width, well_name, plate_name}]``."""
        return self._get(self._e("/sites"), plate_name=plate_name, well_name=well_name)["data"]

    def get_cycles(self) -> list[dict]:
        return self._get(self._e("/cycles"))["data"]

    # -- microscope files ---------------------------------------------------------

    def get_microscope_image_files(self, plate_name: str, acquisition_name: str) -> list[dict]:
        acquisition_id = self._acquisition_id(plate_name, acquisition_name)
        return self._get(self._e(f"/acquisitions/{acquisition_id}/images"))["data"]

    def get_microscope_metadata_files(self, plate_name: str, acquisition_name: str) -> list[dict]:
        acquisition_id = self._acquisition_id(plate_name, acquisition_name)
        return self._get(self._e(f"/acquisitions/{acquisition_id}/metadata"))["data"]

    def get_microscope_files(self, plate_name: str, acquisition_name: str) -> list[dict]:
        """Image and metadata files of an acquisition: ``[{id, name, status}]``."""
        return self.get_microscope_image_files(
            plate_name, acquisition_name
        ) + self.get_microscope_metadata_files(plate_name, acquisition_name)

    def get_uploaded_file_count(self, plate_name: str, acquisition_name: str) -> int:
        """Number of the acquisition's files that are COMPLETE on the server."""
        acquisition_id = self._acquisition_id(plate_name, acquisition_name)
        return int(self._get(self._e(f"/acquisitions/{acquisition_id}/upload/count"))["data"])

    def upload_microscope_files(
        self,
        plate_name: str,
        acquisition_name: str,
        path: str | os.PathLike,
        parallel: int = 1,
        retry: int = 5,
        convert: str | None = None,
        delete_after_upload: bool = False,
        progress: bool = False,
    ) -> list[str]:
        """Upload the microscope files of a directory (or one file), resumably.

        All names are registered first; the server answers with those not yet
        COMPLETE, and only these are sent (multipart field ``file``) on
        `parallel` threads. Files that fail are sent again, up to `retry`
        more rounds; files the experiment's microscope type does not know are
        left out with a warning. Re-running after an interruption therefore transfers
        only what is missing.

        Parameters
        ----------
        plate_name, acquisition_name : str
            Where the files go.
        path : str or Path
            A directory (its regular files, not recursive) or one file.
        parallel : int
            Number of simultaneous uploads.
        retry : int
            Rounds of retries for failed files (0: none).
        convert : {"tif", "tiff", "jpg", "jpeg", "png"}, optional
            Convert image files to this format first (pixel values kept).
        delete_after_upload : bool
            Delete each local file once the server has it.
        progress : bool
            Show files, bytes, rate and time left on a terminal (stderr).

        Returns
        -------
        list of str
            The (server-side) names of the files sent by this call.

        Raises
        ------
        InputError
            When `path` does not exist or holds no files.
        TmClientError
            When files are still missing after the last round.
        """
        source = Path(path).expanduser()
        if source.is_dir():
            local = sorted(
                p for p in source.iterdir() if p.is_file() and not p.name.startswith(".")
            )
        elif source.is_file():
            local = [source]
        else:
            raise InputError(f"{source}: no such file or directory")
        if not local:
            raise InputError(f"{source}: no files to upload")
        if parallel < 1 or retry < 0:
            raise InputError("parallel must be >= 1 and retry >= 0")
        acquisition_id = self._acquisition_id(plate_name, acquisition_name)
        base = self._e(f"/acquisitions/{acquisition_id}")
        workdir = tempfile.mkdtemp(prefix="tmclient-convert-") if convert else None
        try:
            originals: dict[str, Path] = {}
            sends: dict[str, Path] = {}
            for p in local:
                sent = self._convert(p, convert, Path(workdir)) if workdir else p
                sends[sent.name], originals[sent.name] = sent, p
            # files the microscope type does not know (notes, ground truth) would make
            # the server refuse the whole registration: leave them out, say so
            valid = self._post(
                f"{base}/upload/validity-check", {"files": [{"name": n} for n in sends]}
            )["is_valid"]
            skipped = [name for name, ok in zip(list(sends), valid, strict=True) if not ok]
            for name in skipped:
                del sends[name]
            if not sends:
                raise InputError(f"{source}: none of the files is a file of this microscope type")
            if skipped:
                logger.warning(
                    "%d files are no files of this microscope type and stay here, e.g. %s",
                    len(skipped),
                    skipped[0],
                )
            pending = self._post(f"{base}/upload/register", {"files": list(sends)})["data"]
            todo = [name for name in pending if name in sends]
            logger.info("%d of %d files to upload", len(todo), len(sends))
            uploaded: list[str] = []

            def send(name: str) -> str:
                with open(sends[name], "rb") as fh:
                    response = self._request(
                        "POST",
                        f"{base}/microscope-file",
                        files={"file": (name, fh, "application/octet-stream")},
                    )
                return response.json().get("message", "")

            errors: dict[str, BaseException] = {}
            refused: dict[str, BaseException] = {}
            sizes = {name: sends[name].stat().st_size for name in todo}
            bar = Progress("upload", len(todo), sum(sizes.values()), enabled=progress)
            for attempt in range(retry + 1):
                if not todo:
                    break
                if attempt:
                    logger.warning("retrying %d failed uploads (round %d)", len(todo), attempt)
                errors = {}
                for name, message, err in self._parallel(send, todo, parallel):
                    if err is not None:
                        logger.info("upload of %s failed: %s", name, err)
                        # the server refused the request itself: sending it again won't help
                        bucket = refused if getattr(err, "is_client_error", False) else errors
                        bucket[name] = err
                        continue
                    logger.debug("%s: %s", name, message)
                    uploaded.append(name)
                    bar.advance(1, sizes[name])
                    if delete_after_upload:
                        originals[name].unlink(missing_ok=True)
                todo = sorted(errors)
            bar.close()
            failed = {**refused, **errors}
            if failed:
                name, err = next(iter(failed.items()))
                raise TmClientError(
                    getattr(err, "status_code", None) if refused else None,
                    f"{len(failed)} of {len(sends)} files could not be uploaded"
                    f"{'' if refused else f' after {retry} retries'} (e.g. {name}: {err}); "
                    "run the upload again to send only the missing files",
                )
            return uploaded
        finally:
            if workdir:
                shutil.rmtree(workdir, ignore_errors=True)

    @staticmethod
    def _convert(path: Path, fmt: str, workdir: Path) -> Path:
        """`path` as a `fmt` image in `workdir` (other files are returned as they are)."""
        import cv2

        fmt = fmt.lower()
        if fmt not in CONVERT_FORMATS:
            choices = ", ".join(CONVERT_FORMATS)
            raise InputError(f"cannot convert to {fmt!r}: choose one of {choices}")
        if path.suffix.lower() not in _IMAGE_SUFFIXES:
            return path
        pixels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if pixels is None:
            raise InputError(f"{path}: not a readable image, cannot convert it to {fmt}")
        if fmt in ("jpg", "jpeg") and pixels.dtype != np.uint8:
            raise InputError(f"{path}: {pixels.dtype} pixels do not fit a JPEG (8 bits)")
        target = workdir / f"{path.stem}.{fmt}"
        if not cv2.imwrite(str(target), pixels):
            raise InputError(f"{path}: cannot write it as {fmt}")
        return target

    def register_microscope_files(
        self, plate_name: str, acquisition_name: str, path: str | os.PathLike
    ) -> None:
        """Register a directory on the server's file system instead of uploading it."""
        acquisition_id = self._acquisition_id(plate_name, acquisition_name)
        self._post(self._e(f"/acquisitions/{acquisition_id}/register"), {"path": str(path)})

    # -- channels -------------------------------------------------------------------

    def get_channels(self) -> list[dict]:
        """Channels: ``[{id, name, bit_depth, layers}]``."""
        return self._get(self._e("/channels"))["data"]

    def rename_channel(self, name: str, new_name: str) -> None:
        self._put(self._e(f"/channels/{self._channel_id(name)}"), {"name": new_name})
        self._forget("channel", name)

    def _channel_image_response(
        self,
        channel_name: str,
        plate_name: str,
        well_name: str,
        well_pos_y: int,
        well_pos_x: int,
        cycle_index: int,
        tpoint: int,
        zplane: int,
        correct: bool,
        align: bool,
        stream: bool = False,
    ) -> Any:
        path = self._e(f"/channels/{self._channel_id(channel_name)}/image-file")
        params = {
            "plate_name": plate_name,
            "well_name": well_name,
            "well_pos_y": int(well_pos_y),
            "well_pos_x": int(well_pos_x),
            "cycle_index": int(cycle_index),
            "tpoint": int(tpoint),
            "zplane": int(zplane),
            "correct": bool(correct),
            "align": bool(align),
        }
        return self._request("GET", path, params=params, stream=stream)

    def download_channel_image(
        self,
        channel_name: str,
        plate_name: str,
        well_name: str,
        well_pos_y: int,
        well_pos_x: int,
        cycle_index: int = 0,
        tpoint: int = 0,
        zplane: int = 0,
        correct: bool = True,
        align: bool = False,
    ) -> np.ndarray:
        """The pixels of one site's channel image, at their original bit depth."""
        import cv2

        response = self._channel_image_response(
            channel_name, plate_name, well_name, well_pos_y, well_pos_x,
            cycle_index, tpoint, zplane, correct, align,
        )  # fmt: skip
        pixels = cv2.imdecode(np.frombuffer(response.content, np.uint8), cv2.IMREAD_UNCHANGED)
        if pixels is None:
            raise TmClientError(None, "the server sent an image that cannot be decoded")
        return pixels

    def download_channel_image_file(
        self,
        channel_name: str,
        plate_name: str,
        well_name: str,
        well_pos_y: int,
        well_pos_x: int,
        cycle_index: int = 0,
        tpoint: int = 0,
        zplane: int = 0,
        correct: bool = True,
        align: bool = False,
        directory: str | os.PathLike | None = None,
        progress: bool = False,
    ) -> Path:
        """Save one site's channel image as PNG in `directory`; returns its path.

        With `progress`, the bytes received are shown on a terminal.
        """
        response = self._channel_image_response(
            channel_name, plate_name, well_name, well_pos_y, well_pos_x,
            cycle_index, tpoint, zplane, correct, align, stream=True,
        )  # fmt: skip
        default = (
            f"{self.experiment_name}_{plate_name}_{well_name}_y{int(well_pos_y):03d}"
            f"_x{int(well_pos_x):03d}_z{int(zplane):03d}_t{int(tpoint):03d}_{channel_name}.png"
        )
        name = _attachment_name(response, default)
        target = Path(directory or tempfile.gettempdir()) / name
        return _stream_to_file(response, target, progress)

    # -- object types, objects, segmentations ------------------------------------------

    def get_mapobject_types(self) -> list[dict]:
        """Object types: ``[{id, name, features, layers}]``."""
        return self._get(self._e("/mapobject_types"))["data"]

    def create_mapobject_type(self, name: str) -> dict:
        data = self._post(self._e("/mapobject_types"), {"name": name})
        return data.get("data", data)

    def rename_mapobject_type(self, name: str, new_name: str) -> None:
        type_id = self._mapobject_type_id(name)
        self._put(self._e(f"/mapobject_types/{type_id}"), {"name": new_name})
        self._forget("mapobject_type", name)
        self._forget("feature", name)

    def delete_mapobject_type(self, name: str) -> None:
        self._delete(self._e(f"/mapobject_types/{self._mapobject_type_id(name)}"))
        self._forget("mapobject_type", name)
        self._forget("feature", name)

    def get_mapobject(self, mapobject_id: int | str) -> dict:
        """Where an object is: ``{id, type, plate_name, well_name, well_pos_x, ..., label}``."""
        return self._get(self._e(f"/mapobjects/{mapobject_id}/info"))["data"]

    @staticmethod
    def _site_params(
        plate_name: str,
        well_name: str,
        well_pos_y: int | None,
        well_pos_x: int | None,
        tpoint: int | None,
        zplane: int | None = None,
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"plate_name": plate_name, "well_name": well_name}
        for key, value in (
            ("well_pos_y", well_pos_y),
            ("well_pos_x", well_pos_x),
            ("tpoint", tpoint),
            ("zplane", zplane),
        ):
            if value is not None:
                params[key] = int(value)
        return params

    def download_segmentation_image(
        self,
        mapobject_type_name: str,
        plate_name: str,
        well_name: str,
        well_pos_y: int,
        well_pos_x: int,
        tpoint: int = 0,
        zplane: int = 0,
        align: bool = False,
        progress: bool = False,
    ) -> np.ndarray:
        """The label image (int32, 0 = background) of one site's objects of a type.

        With `progress`, the bytes received are shown on a terminal.
        """
        import json

        type_id = self._mapobject_type_id(mapobject_type_name)
        params = self._site_params(plate_name, well_name, well_pos_y, well_pos_x, tpoint, zplane)
        params["align"] = bool(align)
        path = self._e(f"/mapobject_types/{type_id}/segmentations")
        response = self._request("GET", path, params=params, stream=True)
        data = json.loads(_read_body(response, progress))["data"]
        return np.asarray(data, dtype=np.int32)

    def download_segmentation_image_file(
        self,
        mapobject_type_name: str,
        plate_name: str,
        well_name: str,
        well_pos_y: int,
        well_pos_x: int,
        tpoint: int = 0,
        zplane: int = 0,
        align: bool = False,
        directory: str | os.PathLike | None = None,
        progress: bool = False,
    ) -> Path:
        """Save the label image as a 16-bit PNG (32-bit TIFF above 65535 labels)."""
        import cv2

        labels = self.download_segmentation_image(
            mapobject_type_name, plate_name, well_name, well_pos_y, well_pos_x, tpoint, zplane,
            align, progress,
        )  # fmt: skip
        stem = (
            f"{self.experiment_name}_{plate_name}_{well_name}_y{int(well_pos_y):03d}"
            f"_x{int(well_pos_x):03d}_z{int(zplane):03d}_t{int(tpoint):03d}_{mapobject_type_name}"
        )
        folder = Path(directory or tempfile.gettempdir())
        folder.mkdir(parents=True, exist_ok=True)
        if labels.size == 0 or labels.max() <= np.iinfo(np.uint16).max:
            target = folder / f"{stem}.png"
            ok = cv2.imwrite(str(target), labels.astype(np.uint16))
        else:
            target = folder / f"{stem}.tif"
            ok = cv2.imwrite(str(target), labels.astype(np.int32))
        if not ok:
            raise InputError(f"{target}: cannot write the label image")
        return target

    def upload_segmentation_image(
        self,
        mapobject_type_name: str,
        plate_name: str,
        well_name: str,
        well_pos_y: int,
        well_pos_x: int,
        tpoint: int,
        zplane: int,
        image: np.ndarray,
        align: bool = False,
    ) -> None:
        """Store a label image (one int label per object, 0 = background) for a site."""
        image = np.asarray(image)
        if image.ndim != 2 or not np.issubdtype(image.dtype, np.integer):
            raise InputError(f"a label image must be a 2D integer array, got {image.dtype}")
        buffer = io.BytesIO()
        np.savez_compressed(buffer, segmentation=image.astype(np.int32))
        body = self._site_params(plate_name, well_name, well_pos_y, well_pos_x, tpoint, zplane)
        body["npz_file"] = base64.b64encode(buffer.getvalue()).decode("ascii")
        type_id = self._mapobject_type_id(mapobject_type_name)
        path = self._e(f"/mapobject_types/{type_id}/segmentations")
        self._request("POST", path, json=body, params={"align": True} if align else None).json()

    def upload_segmentation_image_file(
        self,
        mapobject_type_name: str,
        plate_name: str,
        well_name: str,
        well_pos_y: int,
        well_pos_x: int,
        tpoint: int,
        zplane: int,
        filename: str | os.PathLike,
        align: bool = False,
    ) -> None:
        """Upload a label image file (PNG/TIFF, ``.npy``, or ``.npz`` with ``segmentation``)."""
        import cv2

        path = _existing_file(filename)
        if path.suffix == ".npy":
            image = np.load(path)
        elif path.suffix == ".npz":
            with np.load(path) as archive:
                if "segmentation" not in archive:
                    raise InputError(f"{path}: no array named 'segmentation'")
                image = archive["segmentation"]
        else:
            image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
            if image is None:
                raise InputError(f"{path}: not a readable image")
        self.upload_segmentation_image(
            mapobject_type_name, plate_name, well_name, well_pos_y, well_pos_x, tpoint, zplane,
            image, align,
        )  # fmt: skip

    def exhibit_mapobject(
        self,
        mapobject_id: int | str,
        channel_names: Iterable[str],
        ooi: Iterable[str] | None = None,
        extra_margin: int = 0,
        palette_name: str = "colorblind",
    ) -> dict[str, np.ndarray]:
        """Crops around one object, one RGB image per channel, with object outlines.

        Parameters
        ----------
        mapobject_id : int or str
            The object.
        channel_names : iterable of str
            Channels to show.
        ooi : iterable of str, optional
            Object types whose outlines are drawn (default: the object's own).
        extra_margin : int
            Pixels added on every side of the object's bounding box.
        palette_name : str
            Outline colours.

        Returns
        -------
        dict
            channel name -> uint8 RGB array.
        """
        import cv2

        if palette_name not in _PALETTES:
            raise InputError(f"unknown palette {palette_name!r}: use {', '.join(_PALETTES)}")
        info = self.get_mapobject(mapobject_id)
        site = (info["plate_name"], info["well_name"], info["well_pos_y"], info["well_pos_x"])
        tpoint, zplane = info.get("tpoint") or 0, info.get("zplane") or 0
        types = list(ooi) if ooi else [info["type"]]
        labels = {
            t: self.download_segmentation_image(t, *site, tpoint=tpoint, zplane=zplane)
            for t in types
        }
        own = labels.get(info["type"])
        if own is None:
            own = self.download_segmentation_image(info["type"], *site, tpoint, zplane)
        ys, xs = np.nonzero(own == int(info["label"]))
        if ys.size == 0:
            raise TmClientError(404, f"object {mapobject_id} is not in its site's segmentation")
        margin = int(extra_margin)
        top, bottom = max(ys.min() - margin, 0), min(ys.max() + margin + 1, own.shape[0])
        left, right = max(xs.min() - margin, 0), min(xs.max() + margin + 1, own.shape[1])
        palette = _PALETTES[palette_name]
        result = {}
        for channel in channel_names:
            pixels = self.download_channel_image(channel, *site, tpoint=tpoint, zplane=zplane)
            crop = pixels[top:bottom, left:right].astype(np.float64)
            upper = np.percentile(crop, 99.9) if crop.size else 1.0
            lower = crop.min() if crop.size else 0.0
            scaled = np.clip((crop - lower) * 255.0 / max(upper - lower, 1.0), 0, 255)
            rgb = cv2.cvtColor(scaled.astype(np.uint8), cv2.COLOR_GRAY2BGR)
            for i, (_name, image) in enumerate(labels.items()):
                window = image[top:bottom, left:right]
                # outline = object pixels with a neighbour of another label
                edge = np.zeros(window.shape, bool)
                edge[1:, :] |= window[1:, :] != window[:-1, :]
                edge[:-1, :] |= window[:-1, :] != window[1:, :]
                edge[:, 1:] |= window[:, 1:] != window[:, :-1]
                edge[:, :-1] |= window[:, :-1] != window[:, 1:]
                rgb[edge & (window > 0)] = palette[i % len(palette)]
            result[channel] = cv2.cvtColor(rgb, cv2.COLOR_BGR2RGB)
        return result

    # -- features -------------------------------------------------------------------

    def get_features(self, mapobject_type_name: str) -> list[dict]:
        """Features of an object type: ``[{id, name}]``."""
        type_id = self._mapobject_type_id(mapobject_type_name)
        return self._get(self._e(f"/mapobject_types/{type_id}/features"))["data"]

    def rename_feature(self, mapobject_type_name: str, name: str, new_name: str) -> None:
        feature_id = self._feature_id(mapobject_type_name, name)
        self._put(self._e(f"/features/{feature_id}"), {"name": new_name})
        self._forget("feature", mapobject_type_name, name)

    def delete_feature(self, mapobject_type_name: str, name: str) -> None:
        self._delete(self._e(f"/features/{self._feature_id(mapobject_type_name, name)}"))
        self._forget("feature", mapobject_type_name, name)

    def _csv_response(
        self,
        resource: str,
        mapobject_type_name: str,
        plate_name: str | None,
        well_name: str | None,
        well_pos_y: int | None,
        well_pos_x: int | None,
        tpoint: int | None,
    ) -> Any:
        type_id = self._mapobject_type_id(mapobject_type_name)
        params = {
            "plate_name": plate_name,
            "well_name": well_name,
            "well_pos_y": well_pos_y,
            "well_pos_x": well_pos_x,
            "tpoint": tpoint,
        }
        path = self._e(f"/mapobject_types/{type_id}/{resource}")
        return self._request("GET", path, params=params, stream=True)

    @staticmethod
    def _read_csv(response: Any) -> pd.DataFrame:
        import pandas as pd

        # pandas reads the socket as it arrives: the CSV is never held twice
        try:
            response.raw.decode_content = True
            return pd.read_csv(response.raw)
        except pd.errors.EmptyDataError:
            return pd.DataFrame()
        finally:
            response.close()

    def download_feature_values(
        self,
        mapobject_type_name: str,
        plate_name: str | None = None,
        well_name: str | None = None,
        well_pos_y: int | None = None,
        well_pos_x: int | None = None,
        tpoint: int | None = None,
    ) -> pd.DataFrame:
        """Feature values: a column ``mapobject_id`` and one column per feature."""
        site = (plate_name, well_name, well_pos_y, well_pos_x, tpoint)
        return self._read_csv(self._csv_response("feature-values", mapobject_type_name, *site))

    def download_object_metadata(
        self,
        mapobject_type_name: str,
        plate_name: str | None = None,
        well_name: str | None = None,
        well_pos_y: int | None = None,
        well_pos_x: int | None = None,
        tpoint: int | None = None,
    ) -> pd.DataFrame:
        """Where each object is (plate, well, site, label ...) and the tool results."""
        site = (plate_name, well_name, well_pos_y, well_pos_x, tpoint)
        return self._read_csv(self._csv_response("metadata", mapobject_type_name, *site))

    def download_object_feature_values(
        self,
        mapobject_type_name: str | None = None,
        plate_name: str | None = None,
        well_name: str | None = None,
        well_pos_y: int | None = None,
        well_pos_x: int | None = None,
        tpoint: int | None = None,
        *,
        mapobject_type: str | None = None,
    ) -> pd.DataFrame:
        """:meth:`download_feature_values` under the user guide's name.

        The guide calls it as ``download_object_feature_values(mapobject_type='Cells')``:
        ``mapobject_type`` is accepted for `mapobject_type_name`.
        """
        name = mapobject_type_name if mapobject_type_name is not None else mapobject_type
        if name is None:
            raise InputError("download_object_feature_values needs the object type's name")
        site = (plate_name, well_name, well_pos_y, well_pos_x, tpoint)
        return self.download_feature_values(name, *site)

    def download_feature_values_and_metadata_files(
        self,
        mapobject_type_name: str,
        directory: str | os.PathLike,
        parallel: int = 1,
        progress: bool = False,
    ) -> list[Path]:
        """Save feature values and metadata as two CSV files per well; returns the paths.

        With `progress`, the files and bytes done are shown on a terminal.
        """
        folder = Path(directory).expanduser()
        folder.mkdir(parents=True, exist_ok=True)
        jobs = [
            (resource, well["plate_name"], well["name"])
            for well in self.get_wells()
            for resource in ("feature-values", "metadata")
        ]

        def fetch(job: tuple[str, str, str]) -> Path:
            resource, plate, well = job
            response = self._csv_response(
                resource, mapobject_type_name, plate, well, None, None, None
            )
            default = (
                f"{self.experiment_name}_{plate}_{well}_{mapobject_type_name}_"
                f"{resource.replace('-', '_')}.csv"
            )
            return _stream_to_file(response, folder / _attachment_name(response, default))

        paths = []
        with Progress("download", len(jobs), enabled=progress) as bar:
            for job, path, err in self._parallel(fetch, jobs, parallel):
                if err is not None:
                    raise TmClientError(
                        getattr(err, "status_code", None), f"{job[0]} of well {job[2]}: {err}"
                    ) from err
                paths.append(path)
                bar.advance(1, path.stat().st_size)
        return sorted(paths)

    def upload_feature_values(
        self,
        mapobject_type_name: str,
        plate_name: str,
        well_name: str,
        well_pos_y: int,
        well_pos_x: int,
        tpoint: int,
        data: pd.DataFrame,
    ) -> None:
        """Store feature values of a site's objects: index = object labels, columns = features."""
        if data.empty:
            raise InputError("no feature values to upload")
        body = self._site_params(plate_name, well_name, well_pos_y, well_pos_x, tpoint)
        try:
            body["labels"] = [int(label) for label in data.index]
        except (TypeError, ValueError) as err:
            raise InputError(f"object labels must be integers: {err}") from err
        body["names"] = [str(c) for c in data.columns]
        body["values"] = [[_json_number(float(v)) for v in row] for row in data.to_numpy()]
        type_id = self._mapobject_type_id(mapobject_type_name)
        self._post(self._e(f"/mapobject_types/{type_id}/feature-values"), body)

    def upload_feature_value_file(
        self,
        mapobject_type_name: str,
        plate_name: str,
        well_name: str,
        well_pos_y: int,
        well_pos_x: int,
        tpoint: int,
        filename: str | os.PathLike,
        index_col: str | int = 0,
    ) -> None:
        """Upload feature values from a CSV whose `index_col` holds the object labels."""
        import pandas as pd

        path = _existing_file(filename)
        try:
            data = pd.read_csv(path, index_col=index_col)
            data = data.apply(pd.to_numeric)
        except (ValueError, KeyError, pd.errors.ParserError) as err:
            raise InputError(f"{path}: {err}") from err
        self.upload_feature_values(
            mapobject_type_name, plate_name, well_name, well_pos_y, well_pos_x, tpoint, data
        )

    # -- workflow -------------------------------------------------------------------

    def download_workflow_description(self) -> dict:
        """The persisted workflow description (a default one if none was saved)."""
        return self._get(self._e("/workflow/description"))["data"]

    def download_workflow_description_file(self, filename: str | os.PathLike) -> Path:
        """Save the workflow description as YAML."""
        path = Path(filename).expanduser()
        description = self.download_workflow_description()
        path.write_text(yaml.safe_dump(description, sort_keys=False, default_flow_style=False))
        return path

    def upload_workflow_description(self, description: dict) -> None:
        """Save a workflow description (as a dict) on the server."""
        if not isinstance(description, dict):
            raise InputError("a workflow description must be a mapping")
        self._post(self._e("/workflow/description"), {"description": description})

    def upload_workflow_description_file(self, filename: str | os.PathLike) -> None:
        """Save a workflow description from a ``.yaml``/``.yml`` file on the server."""
        path = Path(filename).expanduser()
        if path.suffix not in (".yaml", ".yml"):
            raise InputError(f"{path}: a workflow description must be a .yaml or .yml file")
        self.upload_workflow_description(_read_yaml(path))

    def submit_workflow(self, description: dict | None = None) -> str:
        """Submit the workflow (saving `description` first); returns the submission id."""
        body = {} if description is None else {"description": description}
        return str(self._post(self._e("/workflow/submit"), body).get("submission_id"))

    def resubmit_workflow(
        self, stage_name: str | None = None, description: dict | None = None
    ) -> str:
        """Resubmit from stage `stage_name` (default: the first); returns the submission id."""
        body: dict[str, Any] = {}
        if stage_name is not None:
            body["stage_name"] = stage_name
        if description is not None:
            body["description"] = description
        return str(self._post(self._e("/workflow/resubmit"), body).get("submission_id"))

    def kill_workflow(self) -> None:
        """Stop the running workflow."""
        self._post(self._e("/workflow/kill"))

    def get_workflow_status(self, depth: int = 2) -> dict | None:
        """The status tree of the last submission (None if there was none)."""
        return self._get(self._e("/workflow/status"), depth=int(depth))["data"]

    def get_workflow_jobs(
        self,
        step_name: str,
        phase: str | None = None,
        name: str | None = None,
        index: int | None = None,
        batch_size: int | None = None,
        state: str | None = None,
    ) -> list[dict]:
        """The jobs of a step of the last submission; `state` keeps only those in one
        state (``NEW``, ``SUBMITTED``, ``RUNNING``, ``TERMINATED``, ``FAILED`` or
        ``SUCCEEDED``; the last two ended with a non-zero or zero exit code)."""
        return self._get(
            self._e("/workflow/jobs"),
            step_name=step_name,
            phase=phase,
            name=name,
            index=index,
            batch_size=batch_size,
            state=state,
        )["data"]

    def get_workflow_job_log(self, step_name: str, job_name: str) -> dict:
        """``{stdout, stderr}`` of the job `job_name` of a step."""
        jobs = self.get_workflow_jobs(step_name, name=job_name)
        jobs = [j for j in jobs if j.get("name") == job_name]
        if not jobs:
            raise TmClientError(404, f"step {step_name!r} has no job {job_name!r}")
        return self._get(self._e(f"/workflow/jobs/{jobs[0]['id']}/log"))["data"]

    def download_jterator_project(self) -> dict:
        """``{pipeline: <pipeline.yaml>, handles: {module: <handles>}}``."""
        return self._get(self._e("/workflow/jtproject"))["data"]

    def upload_jterator_project(self, pipeline: dict, handles: dict[str, dict]) -> None:
        """Replace the jterator project (pipeline description and module handles)."""
        self._put(self._e("/workflow/jtproject"), {"pipeline": pipeline, "handles": handles})

    def download_jterator_project_files(self, directory: str | os.PathLike) -> list[Path]:
        """Write ``pipeline.yaml`` and ``handles/<module>.handles.yaml`` to `directory`."""
        folder = Path(directory).expanduser()
        project = self.download_jterator_project()
        (folder / "handles").mkdir(parents=True, exist_ok=True)
        written = [folder / "pipeline.yaml"]
        written[0].write_text(yaml.safe_dump(project["pipeline"], sort_keys=False))
        for module, handles in (project.get("handles") or {}).items():
            path = folder / "handles" / f"{module}.handles.yaml"
            path.write_text(yaml.safe_dump(handles, sort_keys=False))
            written.append(path)
        return written

    def upload_jterator_project_files(self, directory: str | os.PathLike) -> None:
        """Upload ``pipeline.yaml`` and ``handles/*.handles.yaml`` from `directory`."""
        folder = Path(directory).expanduser()
        pipeline_file = folder / "pipeline.yaml"
        if not pipeline_file.is_file():
            raise InputError(f"{folder}: no pipeline.yaml")
        handles = {
            path.name[: -len(".handles.yaml")]: _read_yaml(path)
            for path in sorted((folder / "handles").glob("*.handles.yaml"))
        }
        self.upload_jterator_project(_read_yaml(pipeline_file), handles)

    # -- exports --------------------------------------------------------------------

    def export_ome_zarr(
        self,
        version: str = "0.5",
        objects: Sequence[str] = (),
        features: bool = False,
        levels: int | None = None,
        correct: bool = False,
        align: bool = False,
    ) -> dict:
        """Start an OME-Zarr export of the experiment on the server (``tm_export … ome-zarr``).

        The plates are written on the server, under the export's ``path``; poll
        :meth:`get_export` until its ``state`` is ``TERMINATED``, then ``plates``
        lists them. Only you see your exports.

        Returns
        -------
        dict
            ``{id, state, path, plates, request, ...}``.
        """
        body = {
            "format": "ome-zarr", "version": version, "objects": list(objects),
            "features": features, "correct": correct, "align": align,
            **({"levels": levels} if levels is not None else {}),
        }  # fmt: skip
        return self._post(self._e("/exports"), body)["data"]

    def get_exports(self) -> list[dict]:
        """Your exports of the experiment, newest first (see :meth:`export_ome_zarr`)."""
        return self._get(self._e("/exports"))["data"]

    def get_export(self, export_id: int | str) -> dict:
        """One of your exports: its ``state``, ``failed``, ``path`` and ``plates``."""
        return self._get(self._e(f"/exports/{int(export_id)}"))["data"]

    def delete_export(self, export_id: int | str) -> None:
        """Stop an export if it runs and remove what it wrote on the server."""
        self._delete(self._e(f"/exports/{int(export_id)}"))

    # -- tools ----------------------------------------------------------------------

    def get_tools(self) -> list[dict]:
        """The analysis tools: ``[{name, icon, description, methods}]``."""
        return self._get("/api/tools")["data"]

    def request_tool(self, tool_name: str, payload: dict) -> str:
        """Submit a tool job (e.g. ``Heatmap`` with ``{chosen_object_type, selected_feature}``);
        returns the submission id."""
        body = {"tool_name": tool_name, "payload": payload}
        return str(self._post(self._e("/tools/request"), body)["data"]["submission_id"])

    def get_tool_results(self) -> list[dict]:
        """Results of tool runs: ``[{id, name, submission_id, tool_name, type, ...}]``."""
        return self._get(self._e("/tools/results"))["data"]

    def get_tools_status(self, tool_name: str | None = None) -> list[dict]:
        """Status of the experiment's tool jobs (of one tool if named)."""
        return self._get(self._e("/tools/jobs"), tool_name=tool_name)["data"]

    def get_tool_job_log(self, tool_name: str, submission_id: int | str) -> dict:
        """``{stdout, stderr}`` of the tool job of a submission."""
        jobs = self._get(
            self._e("/tools/jobs"), tool_name=tool_name, submission_id=int(submission_id)
        )["data"]
        jobs = [j for j in jobs if str(j.get("submission_id", submission_id)) == str(submission_id)]
        if not jobs:
            raise TmClientError(404, f"no job of tool {tool_name!r} in submission {submission_id}")
        return self._get(self._e(f"/tools/jobs/{jobs[0]['id']}/log"))["data"]


def _read_yaml(path: Path) -> Any:
    try:
        with open(path) as fh:
            return yaml.safe_load(fh)
    except OSError as err:
        raise InputError(f"{path}: {err.strerror}") from err
    except yaml.YAMLError as err:
        raise InputError(f"{path}: not valid YAML: {err}") from err
