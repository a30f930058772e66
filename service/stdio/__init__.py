"""stdio MCP servers: DTMA attaches to their containers and serves them over Streamable HTTP."""
