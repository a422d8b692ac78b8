"""The ledger (accounts with their balances, journal entries) and the financial reports.

Admin scope everywhere: the ledger is the whole business's, never one partner's. Read-only:
entries are posted by billing's services and corrected only by reversing entries.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import DefaultRouter

from api.base import PlatformViewSet, id_parameter, query_filters
from api.pagination import IdCursorPagination
from api.serializers.ledger import (
    AccountListQuerySerializer,
    AccountSerializer,
    DeferredQuerySerializer,
    DeferredSerializer,
    JournalEntryListQuerySerializer,
    JournalEntrySerializer,
    PeriodQuerySerializer,
    RevenueSerializer,
    TrialBalanceQuerySerializer,
    TrialBalanceSerializer,
)
from api.serializers.payments import AgingQuerySerializer, AgingSerializer, ReconciliationSerializer
from billing.ledger.models import Account
from billing.ledger.reports import deferred_revenue_waterfall, revenue_by_month, trial_balance
from billing.ledger.selectors import account_list, journal_entry_get, journal_entry_list
from billing.selectors import ledger_reconciliation, receivables_aging
from core import clock
from core.errors import NotFoundError


@extend_schema_view(
    list=extend_schema(
        operation_id="ledger_accounts_list",
        summary="List ledger accounts with their balances",
        description="Admin scope. One account per code, currency and party (customer "
        "sub-ledgers of receivables and credit); balances are kept current with every posting.",
        parameters=[AccountListQuerySerializer],
        responses=AccountSerializer(many=True),
    ),
    retrieve=extend_schema(
        operation_id="ledger_accounts_retrieve",
        summary="Retrieve a ledger account",
        parameters=[id_parameter("Account")],
        responses=AccountSerializer,
    ),
)
@extend_schema(tags=["ledger"])
class AccountViewSet(PlatformViewSet):
    lookup_value_regex = "[0-9]+"
    filter_backends: list[Any] = []
    pagination_class = IdCursorPagination
    required_scopes = {"list": "admin", "retrieve": "admin"}

    def list(self, request: Request) -> Response:
        query = query_filters(request, AccountListQuerySerializer)
        return self.paginated_response(account_list(**query), AccountSerializer)

    def retrieve(self, request: Request, pk: str) -> Response:
        account = Account.objects.filter(pk=int(pk)).first()
        if account is None:
            raise NotFoundError(f"No such account: {pk}.", code="account_not_found", param="id")
        return Response(AccountSerializer(account).data)


@extend_schema_view(
    list=extend_schema(
        operation_id="ledger_entries_list",
        summary="List journal entries",
        description="Admin scope. Newest first, each with its lines.",
        parameters=[JournalEntryListQuerySerializer],
        responses=JournalEntrySerializer(many=True),
    ),
    retrieve=extend_schema(
        operation_id="ledger_entries_retrieve",
        summary="Retrieve a journal entry",
        parameters=[id_parameter("Journal entry")],
        responses=JournalEntrySerializer,
    ),
)
@extend_schema(tags=["ledger"])
class JournalEntryViewSet(PlatformViewSet):
    lookup_value_regex = "[0-9]+"
    filter_backends: list[Any] = []
    pagination_class = IdCursorPagination
    required_scopes = {"list": "admin", "retrieve": "admin"}

    def list(self, request: Request) -> Response:
        filters = query_filters(request, JournalEntryListQuerySerializer)
        account_id = filters.pop("account", None)
        account = None
        if account_id is not None:
            account = Account.objects.filter(pk=account_id).first()
            if account is None:
                raise NotFoundError(
                    f"No such account: {account_id}.", code="account_not_found", param="account"
                )
        return self.paginated_response(
            journal_entry_list(account=account, **filters), JournalEntrySerializer
        )

    def retrieve(self, request: Request, pk: str) -> Response:
        try:
            entry = journal_entry_get(entry_id=int(pk))
        except NotFoundError:
            raise NotFoundError(
                f"No such journal entry: {pk}.", code="journal_entry_not_found", param="id"
            ) from None
        return Response(JournalEntrySerializer(entry).data)


# --- reports ------------------------------------------------------------------------------------


@extend_schema(tags=["reports"])
class ReportViewSet(PlatformViewSet):
    filter_backends: list[Any] = []
    pagination_class = None
    required_scopes = {
        "trial_balance": "admin",
        "revenue": "admin",
        "deferred_revenue": "admin",
        "ar_aging": "admin",
        "reconciliation": "admin",
    }

    @extend_schema(
        operation_id="reports_trial_balance",
        summary="Trial balance",
        description="Admin scope. Every account of the chart per currency (party sub-ledgers "
        "summed): from the postings up to `as_of` (effective dates), or the current balances.",
        parameters=[TrialBalanceQuerySerializer],
        responses=TrialBalanceSerializer,
    )
    @action(detail=False, methods=["get"])
    def trial_balance(self, request: Request) -> Response:
        query = query_filters(request, TrialBalanceQuerySerializer)
        report = trial_balance(as_of=query.get("as_of"), currency=query.get("currency"))
        body = {
            "as_of": report.as_of,
            "balanced": report.balanced,
            "rows": report.rows,
            "totals": [
                {"currency": currency, "debit": debit, "credit": credit}
                for currency, (debit, credit) in report.totals().items()
            ],
        }
        return Response(TrialBalanceSerializer(body).data)

    @extend_schema(
        operation_id="reports_revenue",
        summary="Revenue recognized per month",
        description="Admin scope. Per month and currency: revenue recognized, refunds and "
        "credits (contra-revenue), and the net. Months without revenue are left out.",
        parameters=[PeriodQuerySerializer],
        responses=RevenueSerializer,
    )
    @action(detail=False, methods=["get"])
    def revenue(self, request: Request) -> Response:
        query = query_filters(request, PeriodQuerySerializer)
        rows = revenue_by_month(**query)
        return Response(RevenueSerializer({"rows": rows}).data)

    @extend_schema(
        operation_id="reports_deferred_revenue",
        summary="Deferred revenue waterfall",
        description="Admin scope. The deferred-revenue balance at each month end from `start`'s "
        "month to `end`'s, with what was billed, recognized and reversed in the month.",
        parameters=[DeferredQuerySerializer],
        responses=DeferredSerializer,
    )
    @action(detail=False, methods=["get"])
    def deferred_revenue(self, request: Request) -> Response:
        query = query_filters(request, DeferredQuerySerializer)
        rows = deferred_revenue_waterfall(**query)
        return Response(DeferredSerializer({"rows": rows}).data)

    @extend_schema(
        operation_id="reports_ar_aging",
        summary="Receivables aging",
        description="Admin scope. What open invoices still ask, per currency, by days past due "
        "(current, 1-30, 31-60, 61-90, over 90).",
        parameters=[AgingQuerySerializer],
        responses=AgingSerializer,
    )
    @action(detail=False, methods=["get"])
    def ar_aging(self, request: Request) -> Response:
        query = query_filters(request, AgingQuerySerializer)
        as_of = query.get("as_of") or clock.today()
        rows = receivables_aging(as_of=as_of)
        return Response(AgingSerializer({"as_of": as_of, "rows": rows}).data)

    @extend_schema(
        operation_id="reports_reconciliation",
        summary="Reconcile the ledger with invoices, payments and balances",
        description=(
            "Admin scope. Receivable per customer against their open invoices' amounts due, "
            "cash against payments less refunds and disputes, customer credit against "
            "balances, deferred revenue against the recognition schedules, and the ledger's "
            "own check. `ok` is false when anything differs."
        ),
        responses=ReconciliationSerializer,
    )
    @action(detail=False, methods=["get"])
    def reconciliation(self, request: Request) -> Response:
        result = ledger_reconciliation()
        return Response(
            ReconciliationSerializer(
                {"ok": result.ok, "checked": result.checked, "mismatches": result.mismatches}
            ).data
        )


def register(router: DefaultRouter) -> None:
    """Register this module's viewsets on the v1 router."""
    router.register("ledger/accounts", AccountViewSet, basename="ledger-accounts")
    router.register("ledger/entries", JournalEntryViewSet, basename="ledger-entries")
    router.register("reports", ReportViewSet, basename="reports")
