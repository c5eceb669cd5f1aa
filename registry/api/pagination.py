from rest_framework.pagination import CursorPagination


class RegistryCursorPagination(CursorPagination):
    """Stable, deep-page-safe paging (no OFFSET): ordered by primary key."""

    ordering = "id"
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000
