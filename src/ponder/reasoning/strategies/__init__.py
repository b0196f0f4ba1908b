"""The built-in strategies, one module each. The registry finds every strategy class defined
here, so adding one is adding a module (and its test)."""
