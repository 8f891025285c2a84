"""Front ends: the run's environments served to outside policies (HTTP, MCP, gymnasium)
and the sim behind the OpenAI API. Each is a thin layer over
:class:`scaleenv._serve.environments.Environments` or the sim backend."""
