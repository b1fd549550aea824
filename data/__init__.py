"""Shared core of focusclip: records, MPII skeleton, file helpers, errors. Imports no other package of ours."""
