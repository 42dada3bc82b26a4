"""One module per method, named after its concept; each opens with the paper it reproduces and the
notebook that teaches it. A method imports only lower layers (and other methods' public names)."""
