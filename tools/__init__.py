"""Development tools of SCM Meterai (not part of the application)."""
