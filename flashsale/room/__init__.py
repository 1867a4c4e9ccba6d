"""The waiting room: a sale's queue, its tickets and purchase tokens, answered in-process."""
