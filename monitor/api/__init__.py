"""The HTTP shell: the FastAPI app factory and every route, auth and the HTTP answers."""
