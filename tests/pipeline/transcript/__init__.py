"""Hand-written model transcripts replayed through a scripted backend (see backend.py)."""
