"""tenant-api: a business, its outlets and numbers, staff and settings; operators create tenants."""

import functions_framework

from shared.cloud import runtime
from shared.tenants.staff_api import api

api.answer_framework_errors()


@functions_framework.http
@runtime.http_function("tenant-api")
def tenant_api(request):  # type: ignore[no-untyped-def]
    return api(request)
