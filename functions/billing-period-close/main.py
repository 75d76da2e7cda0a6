"""billing-period-close: Cloud Scheduler writes each closed billing period's invoice."""

import functions_framework

from shared.billing import invoices
from shared.cloud import runtime


@functions_framework.http
@runtime.http_function("billing-period-close", methods=("POST",))
def close_billing_periods(request):  # type: ignore[no-untyped-def]
    return {"invoices": len(invoices.close_periods())}, 200
