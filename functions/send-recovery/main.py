"""send-recovery: Cloud Scheduler queues again the replies whose send task was lost."""

import functions_framework

from shared.cloud import runtime
from shared.sending import recovery


@functions_framework.http
@runtime.http_function("send-recovery", methods=("POST",))
def recover_sends(request):  # type: ignore[no-untyped-def]
    return recovery.recover_stuck_sends(), 200
