"""When a failed step is worth retrying: transient I/O, never bad data."""

from typing import Any

from somseg.errors import SomsegError
from somseg.io import PERMANENT_ERRNOS, os_errno

IO_RETRIES = 3
IO_RETRY_DELAYS = [1, 4, 10]


def retry_on_io_error(task: Any, task_run: Any, state: Any) -> bool:
    """Retry an ``OSError`` that may pass (a share briefly unreachable, a file being replaced).

    A ``SomsegError`` (bad input, failed expectations, failed gate) would
    fail the same way again, so it is not retried; nor is an ``OSError`` of
    :data:`PERMANENT_ERRNOS`.
    """
    try:
        state.result()
    except SomsegError:
        return False
    except OSError as error:
        return os_errno(error) not in PERMANENT_ERRNOS
    except Exception:
        return False
    return False
