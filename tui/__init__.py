"""The Textual terminal UI, a client of the actor message API."""
