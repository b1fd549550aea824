"""training package of focusclip."""
