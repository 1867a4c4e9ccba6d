"""`flashsale sales ...`: the operator routes of a running engine from the command line."""
