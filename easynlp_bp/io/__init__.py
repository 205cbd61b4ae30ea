"""Table readers and writers with schemas, per-row rejects and input order kept."""
from easynlp_bp.io.readers import Reject, Table, read_table
from easynlp_bp.io.writers import check_writable, rejects_path_for, write_rejects, write_table

__all__ = ["Reject", "Table", "read_table", "write_table", "write_rejects", "rejects_path_for", "check_writable"]
