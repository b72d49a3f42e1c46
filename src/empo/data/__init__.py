"""Datasets empo reads: EmpatheticDialogues (:mod:`empo.data.ed`) and the chat view of a dialogue
(:mod:`empo.data.chat`) that training and evaluation share."""
