"""Model resolution and loading, shared by every stage (align, generate, eval suites)."""
