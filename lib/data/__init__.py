"""Real datasets in their official layouts, one module per dataset family, returning the containers of
:mod:`lib.data.base` (which also holds :class:`~lib.data.base.DatasetError`). Never imports the world or
the evaluation."""
