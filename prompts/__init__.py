"""prompts package of focusclip."""
