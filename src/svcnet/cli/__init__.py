"""The svcnet command."""
