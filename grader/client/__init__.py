"""The student's side of the service: the saved login (`config`) and the API client (`api`)."""
