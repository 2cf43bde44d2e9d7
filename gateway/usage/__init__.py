"""Usage and audit that are not lost: the spool, the dead-letter files, the durable record
writer, request ids, and usage reports as DataFrames."""
