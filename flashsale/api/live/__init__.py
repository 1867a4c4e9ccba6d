"""The operators' live view of a sale: what its stream says (figures) and who reads it
(feeds)."""
