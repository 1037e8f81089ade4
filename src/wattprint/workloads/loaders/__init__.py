"""Built-in model loaders, one module per framework, imported on first use by the registry."""
