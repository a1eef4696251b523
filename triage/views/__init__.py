"""Views, one module per area."""
