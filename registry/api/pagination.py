from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import CursorPagination


class RegistryCursorPagination(CursorPagination):
    """Stable, deep-page-safe paging (no OFFSET): ordered by primary key."""

    ordering = "id"
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000

    def decode_cursor(self, request):
        """The cursor, or a 400 naming it (DRF answers a bad cursor with 404)."""
        try:
            cursor = super().decode_cursor(request)
            # The position is an id (ordering = "id"); DRF passes any text on to the
            # query, where p=abc failed with a 500.
            if cursor is not None and cursor.position is not None:
                int(cursor.position)
        except (NotFound, ValueError):
            raw = request.query_params.get(self.cursor_query_param)
            raise ValidationError({self.cursor_query_param: [
                f"'{raw}' is not a cursor of this list; follow the next and previous links."]}) from None
        return cursor
