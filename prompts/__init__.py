"""Versioned LLM prompt templates (`prompts/templates/`) and the code that fills them."""
from focusclip.prompts.fill import DEFAULT_PROMPT, Prompt, available_prompts, build_prompt, load_templates

__all__ = ["DEFAULT_PROMPT", "Prompt", "available_prompts", "build_prompt", "load_templates"]
