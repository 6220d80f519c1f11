"""HTTP entrypoints: parse input, call one service, translate the result."""
