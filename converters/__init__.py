"""converters package of focusclip."""
