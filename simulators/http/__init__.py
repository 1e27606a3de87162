"""Both fakes over real HTTP: the ASGI apps, their OpenAPI documents, the HTTP transports
and ``credsync serve``."""
