"""huey jobs only (staff work is a FollowUp, never a task)."""
