"""Table readers and writers with schemas, per-row rejects and input order kept."""
from easynlp_bp.io.readers import Reject, Table, read_table
from easynlp_bp.io.writers import (
    check_writable, incomplete_marker_for, refuse_overwriting_inputs, rejects_path_for, write_rejects, write_table,
    write_table_and_rejects,
)

__all__ = ["Reject", "Table", "read_table", "write_table", "write_rejects", "write_table_and_rejects",
           "rejects_path_for", "incomplete_marker_for", "check_writable", "refuse_overwriting_inputs"]
