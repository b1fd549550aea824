"""The project's infrastructure, below every other package: the user-error contract (errors), atomic
files and JSONL (io), stage reports (report), progress bars, output preflight checks, devices, `--shard`
selection and the Hugging Face hub. Imports no other package of ours (tests/test_layout.py)."""
