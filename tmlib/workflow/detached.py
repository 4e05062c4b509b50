"""``python -m tmlib.workflow.detached SUBMISSION_ID``: drive a stored submission to the end.

This is the background engine that :func:`tmlib.workflow.manager.start_detached`
starts in a session of its own (it outlives the server that started it). It
continues the submission as ``tm_workflow ID resume`` would, writes what
happens to its log file (stdout/stderr) and exits 0 when every job succeeded,
1 when one failed or it was killed, 2 for bad input.

SIGTERM stops the jobs, at any time: the handler is installed before anything
else, and only then does the engine tell its starter that it is up
(``--up-fd``); it starts work once the starter has recorded its pid and closed
``--ready-fd``. A killed submission's unfinished collections are marked failed.
It also stops its jobs and exits when the submission is deleted under it (its
experiment was), and when its job spawner dies (the jobs are then lost: failed).
"""

from __future__ import annotations

import signal
import sys
from typing import Any

_state: dict[str, Any] = {"killed": False, "run": None}


def _on_sigterm(_signum: int, _frame: Any) -> None:
    _state["killed"] = True
    if _state["run"] is not None:
        _state["run"].engine.request_kill()


signal.signal(signal.SIGTERM, _on_sigterm)  # first of all: a kill is never lost

import argparse  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402


def _say(text: str) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tmlib.workflow.detached")
    parser.add_argument("submission_id", type=int)
    parser.add_argument("--up-fd", type=int, help="Write a byte here once SIGTERM is handled.")
    parser.add_argument("--ready-fd", type=int, help="Then wait for EOF on this descriptor.")
    args = parser.parse_args(argv)
    if args.up_fd is not None:
        os.write(args.up_fd, b"1")
        os.close(args.up_fd)
    if args.ready_fd is not None:
        with os.fdopen(args.ready_fd, "rb") as pipe:
            pipe.read()  # EOF: our pid is recorded
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from tmlib.errors import UserError
    from tmlib.workflow import manager
    from tmlib.workflow.jobs.engine import Result

    _say(f"engine {os.getpid()}: submission {args.submission_id} starts")
    try:
        run = manager.resume_submission(args.submission_id)
    except UserError as err:
        _say(f"error: {err}")
        return 2
    _state["run"] = run
    if _state["killed"]:  # killed while starting
        run.engine.request_kill()
    try:
        result = run()
    finally:
        _state["run"] = None
    if run.engine.orphaned:  # its experiment was deleted: nothing is left to record
        _say(f"submission {args.submission_id} is gone; its jobs were stopped")
        return 1
    if result is Result.PENDING:  # killed: what did not finish failed
        manager.close_unfinished(args.submission_id)
        _say(f"submission {args.submission_id} was killed")
        return 1
    _say(f"submission {args.submission_id} ended: {result.value}")
    return 0 if result is Result.OK else 1


if __name__ == "__main__":
    sys.exit(main())
