"""Clients of Sage X3's web APIs."""
