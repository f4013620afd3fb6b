"""`chatbridge demo`: ChatBridge's whole lifecycle on the miniature world (see `lifecycle.py`)."""
