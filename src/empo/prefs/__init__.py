"""``empo build-prefs``: emotion-grounded preference pairs from EmpatheticDialogues (EmPO and beyond)."""
