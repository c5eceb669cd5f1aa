"""The patient's questionnaire pages (a channel, like the admin and the API)."""
