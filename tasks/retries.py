"""When a failed step is worth retrying: transient I/O, never bad data."""

import errno
from typing import Any

from somseg.errors import SomsegError

IO_RETRIES = 3
IO_RETRY_DELAYS = [1, 4, 10]
# Errors a retry seconds later cannot fix: the file system is read-only or full, a path
# is a file where a folder is needed (or the reverse), or access is denied.
PERMANENT_ERRNOS = frozenset(
    {errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.ENOTDIR, errno.EISDIR, errno.EACCES, errno.EPERM}
)


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
        return error.errno not in PERMANENT_ERRNOS
    except Exception:
        return False
    return False
