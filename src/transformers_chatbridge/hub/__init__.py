"""The Hub: checking and publishing model and data set folders, with their model card (`model_card.md`)."""
