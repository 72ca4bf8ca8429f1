"""Side-by-side measurements of ec2gw (see docs/benchmarks.md)."""
