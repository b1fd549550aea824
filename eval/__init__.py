"""eval package of focusclip."""
