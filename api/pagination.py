from rest_framework.pagination import CursorPagination


class IdCursorPagination(CursorPagination):
    """Newest first, stable under inserts: the cursor is the last id seen."""

    ordering = "-id"
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 200
