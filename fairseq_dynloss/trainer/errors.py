"""What ``dynloss-train`` prints for a user's mistake: one line and a non-zero exit status, not a
traceback whose last line is the message.

A bug (any other exception) keeps its traceback. ``HYDRA_FULL_ERROR=1`` shows the traceback of
user errors too.
"""

from __future__ import annotations

import os
import sys
from typing import Callable, TypeVar

from fairseq_dynloss.controllers.errors import ControllerError
from fairseq_dynloss.data.cifar import CifarFormatError
from fairseq_dynloss.data.download import ChecksumError, DownloadError
from fairseq_dynloss.data.mnist import IDXFormatError
from fairseq_dynloss.data.sop import SOPFormatError
from fairseq_dynloss.losses.metric_ala import MetricLossError
from fairseq_dynloss.losses.phi import PhiError

from .interrupt import TrainingInterrupted
from .registry import ConfigError
from .run_dir import RunFolderBusy

# Errors that describe bad input (settings, files, folders) in their message.
USER_ERRORS = (ConfigError, PhiError, ControllerError, MetricLossError, ChecksumError, DownloadError,
               CifarFormatError, IDXFormatError, SOPFormatError, FileExistsError, FileNotFoundError,
               RunFolderBusy)
EXIT_USER_ERROR = 2

T = TypeVar("T")


def report_errors(run: Callable[[], T], program: str = "dynloss-train") -> T:
    """Call ``run()``; turn a user error into ``program: error: <message>`` on stderr and exit
    status 2, and an interruption into its message and exit status 128 + signal (130 for
    Ctrl-C)."""
    try:
        return run()
    except TrainingInterrupted as stop:
        print(f"{program}: {stop}", file=sys.stderr, flush=True)
        raise SystemExit(128 + stop.signum) from None
    except USER_ERRORS as error:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        message = " ".join(str(error).split("\n"))
        print(f"{program}: error: {type(error).__name__}: {message}", file=sys.stderr, flush=True)
        raise SystemExit(EXIT_USER_ERROR) from None
