"""Backends behind one small interface (base.Backend): `local` (the default) and `lambda_`."""
