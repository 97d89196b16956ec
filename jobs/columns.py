"""The names of the columns the job adds to rows, in one place.

Written to the output: :data:`ERROR` always, and the ids that make a row resumable when the input
has none (:data:`LINE_ID` for JSON Lines, :data:`ROW_HASH` for Parquet, :data:`PATH` for file folders).
Hidden (dropped before the write): :data:`READ_ERROR`, :data:`DECODED`, and :data:`FILE_BYTES`.
"""

ERROR = "error"  # null when the row is fine, else what went wrong with it
LINE_ID = "line_id"  # "file:line": the row's id for resuming, even when the line itself is unreadable
ROW_HASH = "row_hash"  # Ray's read_parquet(include_row_hash=True) column: file path + row position
PATH = "path"  # a file folder's row id: the file's path (read_binary_files' column)

READ_ERROR = "_read_error"  # a JSON line that did not parse: the worker makes it the row's error
DECODED = "_decoded"  # the decode stage's arrays (images, audio), handed to the actors
FILE_BYTES = "bytes"  # read_binary_files' column; not written back: the files stay where they are
