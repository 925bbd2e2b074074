"""The minict command line."""
