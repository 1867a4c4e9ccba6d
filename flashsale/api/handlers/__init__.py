"""HTTP handlers: requests in, views or problem documents out."""
