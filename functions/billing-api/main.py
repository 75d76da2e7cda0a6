"""billing-api: quota, usage, subscription, deposit and invoices; operators change plans and top up."""

import functions_framework

from shared.billing.staff_api import api
from shared.cloud import runtime

api.answer_framework_errors()


@functions_framework.http
@runtime.http_function("billing-api")
def billing_api(request):  # type: ignore[no-untyped-def]
    return api(request)
