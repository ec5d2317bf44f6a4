"""The synthetic customer sample shipped with somseg, and the script that makes it."""
