"""Running a trained model for users: the chat session (terminal and web) and resumable batch answering."""
