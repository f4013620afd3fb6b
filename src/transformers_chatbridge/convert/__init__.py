"""Conversion of the original ChatBridge release into a ChatBridge folder."""
