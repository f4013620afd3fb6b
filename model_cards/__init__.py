"""Model card templates (Jinja, rendered with huggingface_hub.ModelCard), shipped with the package."""
